import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RETENTION, StreamHistory } from '@app/backplane';
import type { DagDefinition } from '@app/protocol';
import { acquireRedis, type AcquiredRedis, createRedis, freePort, waitFor } from '@app/runtime';
import type Redis from 'ioredis';
import { publishHttp } from './support/http';
import { type AppProcess, startGateway, startWorker } from './support/processes';
import { connectSocket, type TestSocket } from './support/sockets';
import { TEST_API_KEY, TEST_JWT_SECRET, signToken } from './support/tokens';

/**
 * Faults around the processes themselves: Redis away (logs, readiness, HTTP answers), a port
 * already taken, a second `npm start`, and the worker's shutdown deadline with a long job.
 * Real processes from `dist/`, a private redis-server per file.
 */
const ROOT = join(__dirname, '..');
let redis: AcquiredRedis;
const started: AppProcess[] = [];
beforeAll(async () => {
  redis = await acquireRedis({ ownServer: true });
});
afterAll(async () => {
  await Promise.all(started.map((p) => p.kill()));
  await redis?.release();
});

async function readyStatus(url: string): Promise<number> {
  const response = await fetch(`${url}/readyz`, { headers: { connection: 'close' } }).catch(() => null);
  return response?.status ?? 0;
}

/** Output lines that are not one JSON object each (stack traces, console prints). */
function nonJsonLines(output: string): string[] {
  return lines(output).filter((line) => {
    try {
      return typeof JSON.parse(line) !== 'object';
    } catch {
      return true;
    }
  });
}

function lines(output: string): string[] {
  return output.split('\n').filter((line) => line.trim().length > 0);
}

function messages(output: string): string[] {
  return lines(output).map((line) => String((JSON.parse(line) as { msg?: unknown }).msg));
}

/** Runs a built app to its exit (or kills it after `timeoutMs`). */
function runToExit(
  file: string,
  env: Record<string, string>,
  { cwd = ROOT, timeoutMs = 30_000 } = {},
): Promise<{ code: number | null; output: string; ms: number }> {
  const begun = Date.now();
  const child = spawn(process.execPath, [file], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  // 'close', not 'exit': all of its output has been read by then.
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Date.now() - begun });
    }),
  );
}

function holdPort(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('Redis unreachable', () => {
  let gateway: AppProcess;
  let worker: AppProcess;
  beforeAll(async () => {
    [gateway, worker] = await Promise.all([
      startGateway({ redisUrl: redis.url, env: { LOG_LEVEL: 'info' } }, 'faults-gw'),
      startWorker({ redisUrl: redis.url, env: { LOG_LEVEL: 'info' } }),
    ]);
    started.push(gateway, worker);
  });
  // Gone before the next tests: this worker would take their jobs.
  afterAll(() => Promise.all([gateway?.kill(), worker?.kill()]));

  it('gives structured, rate-limited log lines and red readiness, then "redis back" and green', async () => {
    const marks = [gateway.logs.length, worker.logs.length];
    await redis.stop?.();
    await waitFor(async () => (await readyStatus(gateway.url)) === 503 && (await readyStatus(worker.url)) === 503, { message: 'readiness red' });
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect([await readyStatus(gateway.url), await readyStatus(worker.url)]).toEqual([503, 503]);
    await redis.start?.();
    await waitFor(async () => (await readyStatus(gateway.url)) === 200 && (await readyStatus(worker.url)) === 200, {
      message: 'readiness green again',
      timeoutMs: 20_000,
    });
    await waitFor(() => [gateway, worker].every((p, i) => p.logs.slice(marks[i]).includes('"redis back"')), { message: 'redis back logged' });

    for (const [i, app] of [gateway, worker].entries()) {
      const output = app.logs.slice(marks[i]);
      expect({ app: app.kind, nonJson: nonJsonLines(output) }).toEqual({ app: app.kind, nonJson: [] });
      expect(output).not.toMatch(/Unhandled error event|\n\s+at /);
      // Today's failure was hundreds of lines a second; a few are the story of the outage.
      expect({ app: app.kind, lines: lines(output).length <= 12 ? 'few' : lines(output) }).toEqual({ app: app.kind, lines: 'few' });
      const told = messages(output);
      expect(told.filter((m) => m === 'redis unavailable')).toHaveLength(1);
      expect(told.filter((m) => m === 'redis back')).toHaveLength(1);
      expect(told.indexOf('redis unavailable')).toBeLessThan(told.indexOf('redis back'));
      const back = lines(output)
        .map((line) => JSON.parse(line) as { msg: string; downMs?: number; errors?: number })
        .find((line) => line.msg === 'redis back');
      expect(back).toMatchObject({ downMs: expect.any(Number), errors: expect.any(Number) });
      expect(back?.downMs).toBeGreaterThan(5_000);
    }
  }, 60_000);

  it('answers HTTP publishes 503 UNAVAILABLE within 2 s while Redis is down or not answering', async () => {
    const fire = async (count: number, stream: string) =>
      Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const begun = Date.now();
          const answer = await publishHttp(gateway.url, stream, { type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i}` } });
          return { ...answer, ms: Date.now() - begun };
        }),
      );
    const refused = (answers: Array<{ status: number; body: Record<string, unknown>; ms: number }>) => {
      for (const answer of answers) {
        expect(answer).toMatchObject({ status: 503, body: { code: 'UNAVAILABLE', message: expect.any(String), retryAfterMs: expect.any(Number) } });
        expect(answer.ms).toBeLessThanOrEqual(2_000);
      }
    };

    // Down for a while (the requests of the original report waited through reconnect attempts).
    await redis.stop?.();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    refused(await fire(20, 'bot:outage'));

    // Up, but not answering: the connection looks ready, the deadline answers.
    await redis.start?.();
    await waitFor(async () => (await readyStatus(gateway.url)) === 200, { message: 'gateway ready', timeoutMs: 20_000 });
    const client = createRedis({ url: redis.url, role: 'test-pause' }) as Redis;
    try {
      await client.call('CLIENT', 'PAUSE', '4000', 'ALL');
      refused(await fire(10, 'bot:paused'));
    } finally {
      client.disconnect();
    }
    await waitFor(
      async () => (await publishHttp(gateway.url, 'bot:outage', { type: 'session_created', payload: { sessionId: 's1', title: 'after' } })).status === 201,
      {
        message: 'publishing works again',
        timeoutMs: 15_000,
        intervalMs: 200,
      },
    );
  }, 60_000);
});

describe('a port already in use', () => {
  for (const kind of ['gateway', 'worker'] as const) {
    it(`${kind}: one fatal line naming PORT and the port, and a non-zero exit`, async () => {
      const port = await freePort();
      const blocker = await holdPort(port);
      try {
        const env = { REDIS_URL: redis.url, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', JWT_SECRET: TEST_JWT_SECRET, API_KEYS: TEST_API_KEY };
        const { code, output } = await runToExit(join(ROOT, 'dist', 'apps', kind, 'main.js'), env);
        expect(code).not.toBe(0);
        expect(code).not.toBeNull();
        expect(nonJsonLines(output)).toEqual([]);
        const logged = lines(output).map((line) => JSON.parse(line) as { level: string; msg: string; port?: number });
        expect(logged).toEqual([expect.objectContaining({ level: 'fatal', port })]);
        expect(logged[0].msg).toContain(`PORT=${port}`);
        expect(logged[0].msg).toContain('already in use');
      } finally {
        blocker.close();
      }
    });
  }
});

describe('a bad variable', () => {
  for (const kind of ['gateway', 'worker'] as const) {
    it(`${kind}: LOG_LEVEL=log is one fatal JSON line naming LOG_LEVEL and exit 2 (the logger must not throw on it first)`, async () => {
      const env = {
        REDIS_URL: redis.url,
        PORT: String(await freePort()),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'log',
        JWT_SECRET: TEST_JWT_SECRET,
        API_KEYS: TEST_API_KEY,
      };
      const { code, output } = await runToExit(join(ROOT, 'dist', 'apps', kind, 'main.js'), env);
      expect(code).toBe(2);
      expect(nonJsonLines(output)).toEqual([]);
      const logged = lines(output).map((line) => JSON.parse(line) as { level: string; msg: string });
      expect(logged).toEqual([expect.objectContaining({ level: 'fatal', msg: expect.stringContaining('LOG_LEVEL') })]);
    });
  }
});

describe('npm start over a running one', () => {
  const launcher = join(ROOT, 'dist', 'apps', 'embedded', 'main.js');
  // As package.json's start script runs it (there from the repository's root, here from elsewhere).
  const preflight = [
    '-r',
    require.resolve('ts-node/register/transpile-only'),
    '-r',
    require.resolve('tsconfig-paths/register'),
    join(ROOT, 'apps', 'embedded', 'src', 'preflight.ts'),
  ];

  function runPreflight(cwd: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
    const child = spawn(process.execPath, preflight, { cwd, env: { PATH: process.env.PATH ?? '', TS_NODE_PROJECT: join(ROOT, 'tsconfig.json'), ...env } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
  }

  it('checks before it rebuilds: the preflight runs first in the start script', () => {
    const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(scripts.start.indexOf('preflight')).toBeGreaterThanOrEqual(0);
    expect(scripts.start.indexOf('preflight')).toBeLessThan(scripts.start.indexOf('npm run build'));
  });

  it('refuses a second system in the same directory, or on a taken port, with no banner; the first keeps running', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'rtgw-embedded-'));
    const elsewhere = mkdtempSync(join(tmpdir(), 'rtgw-embedded-'));
    const [port, workerPort] = [await freePort(), await freePort()];
    const env = { PORT: String(port), WORKER_PORT: String(workerPort), LOG_LEVEL: 'warn' };
    const first = spawn(process.execPath, [launcher], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    first.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    first.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => first.once('exit', resolve));
    try {
      await waitFor(() => output.includes('Realtime gateway ready at') || first.exitCode !== null, { timeoutMs: 60_000, message: 'the first banner' });
      if (first.exitCode !== null) throw new Error(`the first launcher exited (${first.exitCode}):\n${output}`);
      const running = `already running here (pid ${first.pid}) on http://localhost:${port}`;

      // `npm start`'s first step, in the same directory: refuses before any build.
      const checked = await runPreflight(cwd, env);
      expect(checked.code).toBe(1);
      expect(checked.output).toContain(running);

      // The launcher itself (as if built anyway), same directory: refuses, starts nothing.
      const second = await runToExit(launcher, env, { cwd });
      expect(second.code).toBe(1);
      expect(second.output).toContain(running);
      expect(second.output).not.toContain('ready at');

      // Another directory, same port: the port is named, no banner from someone else's gateway.
      const other = await runToExit(launcher, { ...env, WORKER_PORT: String(await freePort()) }, { cwd: elsewhere });
      expect(other.code).toBe(1);
      expect(other.output).toContain(`PORT=${port}`);
      expect(other.output).not.toContain('ready at');
      expect((await runPreflight(elsewhere, env)).output).toContain(`PORT=${port}`);

      // The first one's token still works: it is the one answering.
      const token = /scope admin, 12 h\):\s+(\S+)/.exec(output)?.[1] as string;
      const socket = await connectSocket(`http://127.0.0.1:${port}`, token);
      expect(socket.hello.serverId).toBe(`embedded-${first.pid}`);
      socket.close();
      first.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(existsSync(join(cwd, '.data', 'embedded.lock'))).toBe(false);
    } finally {
      first.kill('SIGKILL');
      rmSync(cwd, { recursive: true, force: true });
      rmSync(elsewhere, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('the worker shutdown deadline', () => {
  let gateway: AppProcess;
  const workers: AppProcess[] = [];
  beforeAll(async () => {
    gateway = await startGateway({ redisUrl: redis.url }, 'deadline-gw');
    started.push(gateway);
  });
  // Each test's workers go with it: a leftover worker would take the next test's jobs.
  afterEach(() => Promise.all(workers.splice(0).map((w) => w.kill())));

  it('hands a long DAG node back at SHUTDOWN_TIMEOUT_MS; another worker runs it and finishes the execution, once', async () => {
    const workerEnv = { SHUTDOWN_TIMEOUT_MS: '2000' };
    const first = await startWorker({ redisUrl: redis.url, env: workerEnv });
    workers.push(first);

    // A chain of 20 nodes of 100 ms, but the sixth takes 8 s: it runs far past the deadline.
    const nodes = Array.from({ length: 20 }, (_, i) => ({ id: `n${i}`, config: { durationMs: i === 5 ? 8_000 : 100 } }));
    const dag: DagDefinition = { nodes, edges: nodes.slice(1).map((node, i) => ({ from: nodes[i].id, to: node.id })) };
    const socket: TestSocket = await connectSocket(gateway.url, await signToken());
    try {
      const ack = await socket.command<{ executionId: string }>('start_execution', { dag });
      if (!ack.ok) throw new Error(`start_execution failed: ${JSON.stringify(ack)}`);
      const stream = `dag:${ack.result.executionId}` as const;
      await socket.command('subscribe', { stream });
      const completedNodes = () => socket.events.filter((e) => e.type === 'node_state' && (e.payload as { status: string }).status === 'completed').length;
      await waitFor(() => completedNodes() >= 5, { message: 'the execution under way', timeoutMs: 20_000 });
      const second = await startWorker({ redisUrl: redis.url, env: workerEnv });
      workers.push(second);

      const stopping = Date.now();
      const code = await first.stop();
      const took = Date.now() - stopping;
      expect(code).toBe(0);
      expect(took).toBeLessThan(2_000 + 3_000);
      expect(completedNodes()).toBeLessThan(20);
      // (The exit can be reported before the last of its output is read.)
      await waitFor(() => first.logs.includes('handing active jobs back'), { message: 'the hand-back logged', timeoutMs: 2_000 });

      await waitFor(() => socket.events.some((e) => e.type === 'execution_complete'), {
        message: 'the execution completed on the second worker',
        timeoutMs: 30_000,
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Everything the stream holds, from Redis: one end, every node completed.
      const client = createRedis({ url: redis.url, role: 'test-read' });
      try {
        const history = new StreamHistory(client, DEFAULT_RETENTION);
        const head = await history.head(stream);
        const events = await history.range(stream, 1, head?.seq ?? 0);
        const completes = events.filter((e) => e.type === 'execution_complete');
        expect(completes).toHaveLength(1);
        expect(completes[0].payload).toMatchObject({ status: 'completed' });
        expect(Object.keys((completes[0].payload as { results: Record<string, unknown> }).results)).toHaveLength(20);
        const done = new Set(
          events
            .filter((e) => e.type === 'node_state' && (e.payload as { status: string }).status === 'completed')
            .map((e) => (e.payload as { nodeId: string }).nodeId),
        );
        expect(done.size).toBe(20);
        expect(events.filter((e) => e.type === 'execution_started')).toHaveLength(1);
        expect(events.filter((e) => e.type === 'edge_active')).toHaveLength(19);
        // The handed-back node ran again on the second worker; its events went out once.
        const n5 = events.filter((e) => e.type === 'node_state' && (e.payload as { nodeId: string }).nodeId === 'n5');
        expect(n5.map((e) => (e.payload as { status: string }).status)).toEqual(['ready', 'running', 'completed']);
      } finally {
        await client.quit();
      }
      const metrics = await (await fetch(`${second.url}/metrics`, { headers: { connection: 'close' } })).text();
      expect(metrics).toMatch(/rtwk_jobs_total\{queue="dag-nodes",outcome="completed"\} 1[0-9]/);
    } finally {
      socket.close();
    }
  }, 90_000);

  it('hands an agent run back at the deadline; the next worker ends it failed, with one done', async () => {
    const workerEnv = { SHUTDOWN_TIMEOUT_MS: '1000', DEMO_CHUNK_DELAY_MS: '300' };
    const first = await startWorker({ redisUrl: redis.url, env: workerEnv });
    workers.push(first);
    const socket = await connectSocket(gateway.url, await signToken());
    try {
      await socket.command('subscribe', { stream: 'bot:deadline' });
      // About 20 chunks of 300 ms: six seconds, past the one-second deadline.
      const ack = await socket.command<{ runId: string }>('chat', { botId: 'deadline', content: 'y'.repeat(110) });
      if (!ack.ok) throw new Error(`chat failed: ${JSON.stringify(ack)}`);
      const chunks = () => socket.events.filter((e) => e.type === 'message' && (e.payload as { role: string }).role === 'assistant').length;
      await waitFor(() => chunks() >= 2, { message: 'the run streaming', timeoutMs: 20_000 });
      workers.push(await startWorker({ redisUrl: redis.url, env: workerEnv }));

      const stopping = Date.now();
      expect(await first.stop()).toBe(0);
      expect(Date.now() - stopping).toBeLessThan(1_000 + 3_000);
      const dones = () => socket.events.filter((e) => e.type === 'done');
      await waitFor(() => dones().length > 0, { message: 'the run ended', timeoutMs: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(dones().map((e) => e.payload)).toEqual([expect.objectContaining({ runId: ack.result.runId, status: 'failed' })]);
      expect(chunks()).toBeLessThan(20);
      // What the first worker had streamed left before it let go of the run: nothing follows `done`.
      expect(socket.events.filter((e) => (e.payload as { runId?: string }).runId === ack.result.runId).at(-1)?.type).toBe('done');
    } finally {
      socket.close();
    }
  }, 60_000);
});
