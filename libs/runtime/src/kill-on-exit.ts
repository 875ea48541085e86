import type { ChildProcess } from 'node:child_process';

/** Children still running that this process started (see {@link killOnExit}). */
const children = new Set<ChildProcess>();
let listening = false;

/**
 * Kills `child` (SIGKILL) when this process exits, however it exits, unless the child ended
 * first: a private Redis or a test's gateway never outlives the process that started it. One
 * `exit` listener serves every child (a listener each went past Node's limit of ten warning
 * with a cluster's six Redis nodes and a few pods).
 */
export function killOnExit(child: ChildProcess): void {
  if (!listening) {
    listening = true;
    process.once('exit', () => {
      for (const running of children) running.kill('SIGKILL');
    });
  }
  children.add(child);
  child.once('exit', () => children.delete(child));
}
