import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { RedisServerProcess } from '@app/runtime';
import WebSocket from 'ws';
import { startGateway } from '../test/support/processes';
import { signToken } from '../test/support/tokens';
import { rssKb, sleep } from './common';
import { plainScript } from './plain-script';

/**
 * Idle memory per plain-WebSocket connection (PROTOCOL.md §11, `/ws`), side by side in one
 * run: a gateway pod (the build, as it runs in production) against a bare `ws` server
 * (bench/bare-ws-server.ts, built and run on plain node the same way). Each side gets N
 * connections that authenticate by query token, get `hello`, subscribe to one of 50 streams
 * and then sit idle; the server process' RSS growth per connection from N/3 to N connections. Rounds alternate the
 * order (ABBA). Run after `npm run build`:
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register bench/plain-ws-memory.ts
 *   BENCH_CONNECTIONS (15000; the open-files cap is 20,000 per process), BENCH_ROUNDS (2)
 */
const N = Number(process.env.BENCH_CONNECTIONS ?? 15_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const STREAMS = 50;

interface Side {
  pid: number;
  url: string;
  stop(): Promise<void>;
}

async function gatewaySide(redisUrl: string): Promise<Side> {
  const pod = await startGateway({ redisUrl, env: { LOG_LEVEL: 'warn' } }, 'mem-pod');
  return { pid: pod.pid as number, url: pod.url, stop: async () => void (await pod.kill()) };
}

async function bareSide(): Promise<Side> {
  const child = spawn(process.execPath, [plainScript(join(__dirname, 'bare-ws-server.ts'))], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) =>
    child.stdout.on('data', (chunk: Buffer) => resolve(Number(/listening (\d+)/.exec(chunk.toString())?.[1]))),
  );
  return {
    pid: child.pid as number,
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** Opens `count` connections, each subscribed to one stream (acked); resolves with them. */
async function connect(url: string, token: string, count: number): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  const batch = 200;
  for (let i = 0; i < count; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, (_, j) => {
        const n = i + j;
        return new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(`${url.replace('http', 'ws')}/ws?token=${token}`);
          sockets.push(ws);
          ws.on('error', reject);
          ws.on('message', (data) => {
            const frame = JSON.parse(data.toString()) as { kind: string; id?: string; ok?: boolean };
            if (frame.kind === 'hello') ws.send(JSON.stringify({ v: 1, id: `s${n}`, type: 'subscribe', payload: { stream: `bot:mem-${n % STREAMS}` } }));
            else if (frame.kind === 'ack' && frame.id === `s${n}`) {
              if (frame.ok) resolve();
              else reject(new Error(data.toString()));
            }
          });
        });
      }),
    );
  }
  return sockets;
}

/**
 * The marginal cost: RSS with N/3 connections, then with N, ÷ the 2N/3 in between. The first
 * third fills what heap a process had free after its start (a Nest pod starts with tens of MB
 * of it, a bare script with little), which would otherwise make the heavier process look lighter.
 */
async function measure(side: Side, token: string): Promise<{ before: number; after: number; perConnKb: number }> {
  const first = Math.round(N / 3);
  const sockets = await connect(side.url, token, first);
  await sleep(3_000);
  const before = rssKb(side.pid);
  sockets.push(...(await connect(side.url, token, N - first)));
  await sleep(3_000);
  const after = rssKb(side.pid);
  sockets.forEach((ws) => ws.terminate());
  return { before, after, perConnKb: (after - before) / (N - first) };
}

async function main(): Promise<void> {
  const redis = await RedisServerProcess.start({ persistent: false });
  const token = await signToken({ sub: 'mem', scope: ['bot:*'] });
  const results: Record<'gateway' | 'bare', number[]> = { gateway: [], bare: [] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const order: Array<'gateway' | 'bare'> = round % 2 === 0 ? ['gateway', 'bare'] : ['bare', 'gateway'];
      for (const name of order) {
        const side = name === 'gateway' ? await gatewaySide(redis.url) : await bareSide();
        try {
          const m = await measure(side, token);
          results[name].push(m.perConnKb);
          console.log(`round ${round + 1} ${name.padEnd(8)} RSS ${m.before} → ${m.after} KB: ${m.perConnKb.toFixed(2)} KB per connection`);
        } finally {
          await side.stop();
        }
      }
    }
  } finally {
    await redis.stop();
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const g = median(results.gateway);
  const b = median(results.bare);
  const report = [
    `# Idle memory per plain-WebSocket (/ws) connection — ${new Date().toISOString().slice(0, 10)}`,
    '',
    'Produced by `bench/plain-ws-memory.ts` (see its header for the method).',
    '',
    `- Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}); load average at the end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}.`,
    `- ${N.toLocaleString('en-US')} connections per side, each authenticated by query token, greeted, subscribed to one of ${STREAMS} streams, then idle 3 s; RSS growth from the first third to all of them, ÷ the connections in between; ${ROUNDS} rounds, order alternating.`,
    '',
    '| | gateway `/ws` | bare `ws` server | gateway / bare |',
    '|---|---:|---:|---:|',
    `| RSS per idle connection (marginal), KB (median; rounds: ${results.gateway.map((v) => v.toFixed(2)).join(', ')} vs ${results.bare.map((v) => v.toFixed(2)).join(', ')}) | ${g.toFixed(2)} | ${b.toFixed(2)} | ${(g / b).toFixed(2)} |`,
    '',
    `Target (issue 7): ≤ 10 KB per connection on the gateway — ${g <= 10 ? 'met' : 'NOT met'}.`,
    '',
  ].join('\n');
  const dir = join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `plain-ws-memory-${new Date().toISOString().slice(0, 10)}${process.env.BENCH_SUFFIX ?? ''}.md`);
  writeFileSync(file, report);
  console.log(`\n${report}\nwritten to ${file}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
