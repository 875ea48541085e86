import { createShardedAdapter } from '@socket.io/redis-adapter';
import Redis from 'ioredis';
import { Server } from 'socket.io';
import { DEFAULT_RETENTION, StreamPublisher } from '@app/backplane';
import type { StreamName } from '@app/protocol';
import { createRedis, waitForReady } from '@app/runtime';
import { cpuNow, nowUs, serveRequests } from '../bench/common';

/**
 * One publisher process of the load kit (forked by load/run.ts). It publishes its streams at
 * steady rates, open loop (a slow answer never holds the next event back), each event
 * `{ s, n, t, pad }`: stream index, per-stream counter from 1, send time (CLOCK_MONOTONIC µs,
 * comparable with the clients' receive time) and padding. LOAD_PUBLISH selects how:
 *   direct   — StreamPublisher (the Lua script), as workers publish;
 *   http     — POST /v1/streams/:s/events on the pods, round robin, with an Idempotency-Key
 *              so a retry on another pod (after a pod dies) cannot publish twice;
 *   both     — every other event each way;
 *   baseline — a socket.io server with the sharded adapter and no sockets: io.to(room).emit.
 */
const mode = process.env.LOAD_PUBLISH ?? 'direct';
const redisUrl = process.env.REDIS_URL ?? '';
const apiKey = process.env.LOAD_API_KEY ?? '';
const HTTP_ATTEMPTS = 8;

interface Payload {
  s: number;
  n: number;
  t: number;
  pad: string;
}
type Send = (name: string, payload: Payload) => Promise<number>;

let pods: string[] = [];
let podAlive: boolean[] = [];
let nextPod = 0;
let errors = 0;
let httpRetries = 0;

async function httpSend(name: string, payload: Payload): Promise<number> {
  const key = `load-${payload.s}-${payload.n}-${process.pid}`;
  for (let attempt = 1; ; attempt++) {
    const alive = pods.filter((_, j) => podAlive[j]);
    const url = alive[nextPod++ % alive.length];
    try {
      const response = await fetch(`${url}/v1/streams/${encodeURIComponent(name)}/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ type: 'load_tick', payload }),
        signal: AbortSignal.timeout(5_000),
      });
      if (response.status === 201) return ((await response.json()) as { seq: number }).seq;
      if (response.status < 500 || attempt >= HTTP_ATTEMPTS) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
    } catch (error) {
      if (attempt >= HTTP_ATTEMPTS) throw error;
    }
    httpRetries++;
    await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
  }
}

async function makeSender(): Promise<{ send: Send; flush: () => Promise<unknown> }> {
  if (mode === 'baseline') {
    const pub = new Redis(redisUrl);
    const sub = new Redis(redisUrl);
    await Promise.all([waitForReady(pub), waitForReady(sub)]);
    const io = new Server({ adapter: createShardedAdapter(pub, sub, { subscriptionMode: 'dynamic' }) });
    return {
      send: (name, payload) => {
        io.to(name).emit('event', payload);
        return Promise.resolve(payload.n);
      },
      // One connection, answered in order: a PING answered means every SPUBLISH was taken.
      flush: () => pub.ping(),
    };
  }
  const redis = createRedis({ url: redisUrl, role: 'load-publisher' });
  await waitForReady(redis);
  const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
  const direct: Send = async (name, payload) => (await publisher.publish(name as StreamName, { type: 'load_tick', payload })).seq;
  const send: Send = mode === 'http' ? httpSend : mode === 'both' ? (name, p) => (p.n % 2 ? direct(name, p) : httpSend(name, p)) : direct;
  return { send, flush: () => publisher.drain() };
}

async function main(): Promise<void> {
  if (!['direct', 'http', 'both', 'baseline'].includes(mode)) throw new Error(`LOAD_PUBLISH must be direct, http, both or baseline, not ${mode}`);
  const sender = await makeSender();
  let names: string[] = [];
  let indexes: number[] = [];
  let periodUs: number[] = [];
  let due: number[] = [];
  let sent: number[] = [];
  let finals: number[] = [];
  let pad = '';
  let timer: NodeJS.Timeout | null = null;
  const inFlight = new Set<Promise<unknown>>();

  const tick = () => {
    const now = nowUs();
    for (let j = 0; j < names.length; j++) {
      // Bounded catch-up after a stall: at most 100 events per stream and tick.
      for (let burst = 0; due[j] <= now && burst < 100; burst++) {
        due[j] += periodUs[j];
        const n = ++sent[j];
        const task = sender
          .send(names[j], { s: indexes[j], n, t: nowUs(), pad })
          .then(
            (seq) => void (finals[j] = Math.max(finals[j], seq)),
            () => void errors++,
          )
          .finally(() => inFlight.delete(task));
        inFlight.add(task);
      }
    }
  };

  serveRequests({
    /** streams: [{ name, index, rate }] — rate in events/s; phases spread over one period. */
    start: (request) => {
      const streams = request.streams as Array<{ name: string; index: number; rate: number }>;
      pods = request.pods as string[];
      podAlive = pods.map(() => true);
      pad = 'x'.repeat(Number(request.padBytes ?? 0));
      names = streams.map((s) => s.name);
      indexes = streams.map((s) => s.index);
      periodUs = streams.map((s) => 1e6 / s.rate);
      const start = nowUs() + 10_000;
      due = streams.map((_, j) => start + (periodUs[j] * j) / streams.length);
      sent = streams.map(() => 0);
      finals = streams.map(() => 0);
      const loop = () => {
        tick();
        // Sleep until the next event is due (at most 50 ms, so a stop is noticed).
        const wait = (due.reduce((m, d) => Math.min(m, d), Number.POSITIVE_INFINITY) - nowUs()) / 1000;
        timer = setTimeout(loop, Math.max(0, Math.min(50, wait)));
      };
      loop();
    },
    pods: (request) => void (podAlive = request.alive as boolean[]),
    stats: () => ({ sent: sent.reduce((a, b) => a + b, 0), errors, httpRetries, inFlight: inFlight.size, cpu: cpuNow() }),
    /** Stops publishing, waits for every send to settle, answers the last seq (n) per stream index. */
    stop: async () => {
      if (timer) clearTimeout(timer);
      timer = null;
      await Promise.allSettled([...inFlight]);
      await sender.flush();
      return { indexes, sent, finals, errors, httpRetries };
    },
  });
  process.send?.({ ready: true });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
