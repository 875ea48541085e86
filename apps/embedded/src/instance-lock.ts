import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkListen, describeListenError } from '@app/runtime/listen-error';

/**
 * One embedded system per directory: `npm start` writes `.data/embedded.lock` (its pid and
 * URL) and removes it when it stops. A second `npm start` in the same directory reads it and
 * refuses — before rebuilding `dist/` under the running one, and before starting a second
 * Redis on the same data.
 */
export interface RunningInstance {
  pid: number;
  url: string;
}

export function lockFile(dataDir: string): string {
  return join(dataDir, 'embedded.lock');
}

/** The launcher holding this directory's lock, if it is still alive. */
export function runningInstance(dataDir: string): RunningInstance | null {
  const holder = readLock(lockFile(dataDir));
  return holder && holder.pid !== process.pid && isLauncher(holder.pid) ? holder : null;
}

/** Takes the lock, or returns who holds it. A lock left by a dead launcher is taken over. */
export function acquireInstanceLock(dataDir: string, url: string): { release: () => void } | { holder: RunningInstance } {
  mkdirSync(dataDir, { recursive: true });
  const path = lockFile(dataDir);
  const record: RunningInstance = { pid: process.pid, url };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, JSON.stringify(record), { flag: 'wx' });
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error;
      const holder = runningInstance(dataDir);
      if (holder) return { holder };
      unlinkSync(path);
      continue;
    }
    const release = () => {
      if (readLock(path)?.pid === process.pid) unlinkQuietly(path);
    };
    process.once('exit', release);
    return { release };
  }
  throw new Error(`could not take ${path}: another launcher keeps replacing it`);
}

export function alreadyRunning(holder: RunningInstance): string {
  return `a realtime gateway is already running here (pid ${holder.pid}) on ${holder.url}; stop it first (Ctrl-C in its terminal, or kill ${holder.pid})`;
}

/**
 * Why this port cannot be listened on (named with its variable), or null when it is free.
 * Checked on the gateway's own host, so a listener on any of its addresses counts.
 */
export function portProblem(port: number, variable: string, host = process.env.HOST ?? '0.0.0.0'): Promise<string | null> {
  return checkListen(port, host).then(
    () => null,
    (error: Error) => describeListenError(error, { port, host, portVariable: variable }) ?? `${variable}=${port}: ${error.message}`,
  );
}

function readLock(path: string): RunningInstance | null {
  try {
    const holder = JSON.parse(readFileSync(path, 'utf8')) as RunningInstance;
    return Number.isInteger(holder.pid) ? holder : null;
  } catch {
    return null; // no lock, or a torn one: nobody we can name holds it
  }
}

/** Alive, and (where /proc tells) a Node process running the launcher, not a recycled pid. */
function isLauncher(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as { code?: string }).code !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('embedded');
  } catch {
    return true; // no /proc here: alive is the best we know
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
