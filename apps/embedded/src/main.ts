import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { acquireRedis, createLogger, freePort, signDevToken } from '@app/runtime';
import { devCredentials } from './dev-credentials';
import { acquireInstanceLock, alreadyRunning, portProblem } from './instance-lock';

/**
 * `npm start`: the whole system on one machine with no set-up — a Redis (REDIS_URL, else a
 * private redis-server, else a container), one gateway and one worker, each its own
 * process exactly as in production. Prints the URL, a development token and an API key.
 */
const logger = createLogger('embedded');
const children: ChildProcess[] = [];
let stopping = false;

async function main(): Promise<void> {
  const dataDir = join(process.cwd(), '.data');
  const port = Number(process.env.PORT ?? 3000);
  const url = `http://localhost:${port}`;
  // One system per directory, and only on ports nobody holds: refuse before starting anything.
  const lock = acquireInstanceLock(dataDir, url);
  if ('holder' in lock) return refuse(alreadyRunning(lock.holder));
  const workerPort = process.env.WORKER_PORT ? Number(process.env.WORKER_PORT) : await freePort();
  for (const [variable, value] of [
    ['PORT', port],
    ['WORKER_PORT', workerPort],
  ] as const) {
    const problem = await portProblem(value, variable);
    if (problem) return refuse(problem);
  }
  // Data under .data/redis survives restarts of `npm start`.
  const redis = await acquireRedis({ persistent: true, dataDir: join(dataDir, 'redis'), detached: true });
  logger.info({ redis: redis.kind }, `redis: ${redis.url} (${redis.kind})`);
  const serverId = process.env.SERVER_ID ?? `embedded-${process.pid}`;
  // Kept in .data across restarts, so `npm run token` and saved API keys keep working.
  const { jwtSecret, apiKey } = devCredentials(dataDir);
  // One Redis URL for the children (a cluster given as REDIS_CLUSTER_NODES travels as its URL).
  const { REDIS_CLUSTER_NODES: _nodes, ...inherited } = process.env;
  const shared = { ...inherited, REDIS_URL: redis.url, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' };

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await Promise.all(children.map((child) => terminate(child)));
    await redis.release();
    lock.release();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  const dist = join(__dirname, '..');
  start('gateway', join(dist, 'gateway', 'main.js'), { ...shared, PORT: String(port), SERVER_ID: serverId, JWT_SECRET: jwtSecret, API_KEYS: apiKey }, stop);
  start('worker', join(dist, 'worker', 'main.js'), { ...shared, PORT: String(workerPort) }, stop);
  // Ready means our own gateway answered, never whatever else listens on the port.
  await waitReady(`http://127.0.0.1:${port}/readyz`, serverId);

  const token = await signDevToken({
    sub: 'developer',
    scope: ['admin'],
    ttlSeconds: 12 * 3600,
    secret: jwtSecret,
    // As the gateway checks them when set (and as `npm run token` adds them).
    issuer: process.env.JWT_ISSUER || undefined,
    audience: process.env.JWT_AUDIENCE || undefined,
  });
  process.stdout.write(
    [
      '',
      `  Realtime gateway ready at ${url}  (worker metrics on :${workerPort})`,
      `  Development token (sub "developer", scope admin, 12 h):`,
      `    ${token}`,
      `  API key for POST /v1/streams/:stream/events:  ${apiKey}`,
      `  More tokens:  npm run token -- --sub alice --scope bot:demo --ttl 1h`,
      '',
      `  Try:  curl -s -X POST ${url}/v1/streams/bot:demo/events -H 'authorization: Bearer ${apiKey}' \\`,
      `          -H 'content-type: application/json' -d '{"type":"session_created","payload":{"sessionId":"s1","title":"hello"}}'`,
      '  Stop with Ctrl-C.',
      '',
    ].join('\n') + '\n',
  );
}

function start(name: string, file: string, env: NodeJS.ProcessEnv, stop: (code: number) => Promise<void>): void {
  // Own process group: a Ctrl-C reaches only this launcher, which then stops each child
  // once and gracefully (a second signal would make them exit at once).
  const child = spawn(process.execPath, [file], { env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  children.push(child);
  child.once('exit', (code, signal) => {
    if (stopping) return;
    logger.error({ process: name, code, signal }, `${name} exited; stopping everything`);
    void stop(1);
  });
}

function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function waitReady(url: string, serverId: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const response = await fetch(url).catch(() => null);
    const body = response?.ok ? ((await response.json().catch(() => null)) as { serverId?: unknown } | null) : null;
    if (body?.serverId === serverId) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the gateway did not become ready at ${url}`);
}

function refuse(problem: string): void {
  logger.fatal(problem);
  process.exitCode = 1;
}

main().catch((error: unknown) => {
  logger.fatal({ err: error }, error instanceof Error ? error.message : String(error));
  for (const child of children) child.kill('SIGTERM');
  process.exit(1);
});
