import { join } from 'node:path';
import { alreadyRunning, portProblem, runningInstance } from './instance-lock';

/**
 * `npm start`'s first step, before it rebuilds `dist/`: refuses when this directory's system
 * is already running (rebuilding would swap the code under it) or a port it needs is taken.
 * The launcher checks again, holding the lock, once built. Run with ts-node: no build needed.
 */
async function preflight(): Promise<string | null> {
  const holder = runningInstance(join(process.cwd(), '.data'));
  if (holder) return alreadyRunning(holder);
  const ports: Array<[string, number]> = [['PORT', Number(process.env.PORT ?? 3000)]];
  if (process.env.WORKER_PORT) ports.push(['WORKER_PORT', Number(process.env.WORKER_PORT)]);
  for (const [variable, port] of ports) {
    const problem = await portProblem(port, variable);
    if (problem) return problem;
  }
  return null;
}

preflight().then(
  (problem) => {
    if (!problem) return;
    process.stderr.write(`npm start: ${problem}\n`);
    process.exit(1);
  },
  (error: unknown) => {
    process.stderr.write(`npm start: preflight failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
