import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from './testing/wait';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

it('kills the children still running when the process exits, with one exit listener for them all', async () => {
  // A process that starts twelve children (more than Node's ten-listener warning), lets one
  // end by itself, then exits: it prints the pids and how many exit listeners it had.
  const script = `
    const { spawn } = require('node:child_process');
    const { killOnExit } = require(${JSON.stringify(join(__dirname, 'kill-on-exit.ts'))});
    const children = Array.from({ length: 12 }, (_, i) => spawn('sleep', [i === 0 ? '0' : '30'], { stdio: 'ignore' }));
    children.forEach(killOnExit);
    children[0].once('exit', () => {
      console.log(JSON.stringify({ pids: children.slice(1).map((c) => c.pid), listeners: process.listenerCount('exit') }));
      process.exit(0);
    });
  `;
  const output = execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], { encoding: 'utf8' });
  const { pids, listeners } = JSON.parse(output.trim()) as { pids: number[]; listeners: number };
  expect(listeners).toBe(1);
  expect(pids).toHaveLength(11);
  await waitFor(() => pids.every((pid) => !alive(pid)), { message: 'every child killed' });
});
