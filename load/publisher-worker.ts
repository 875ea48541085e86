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

/** Streams published at steady rates, open loop; `tick` sends what is due. */
class Schedule {
  readonly names: string[];
  readonly indexes: number[];
  readonly sent: number[];
  readonly finals: number[];
  private readonly periodUs: number[];
  private readonly due: number[];

  constructor(
    streams: Array<{ name: string; index: number; rate: number }>,
    private readonly sender: { send: Send },
    private readonly pad: string,
    private readonly inFlight: Set<Promise<unknown>>,
  ) {
    this.names = streams.map((s) => s.name);
    this.indexes = streams.map((s) => s.index);
    this.periodUs = streams.map((s) => 1e6 / s.rate);
    // Phases spread over one period.
    const start = nowUs() + 10_000;
    this.due = streams.map((_, j) => start + (this.periodUs[j] * j) / streams.length);
    this.sent = streams.map(() => 0);
    this.finals = streams.map(() => 0);
  }

  get total(): number {
    return this.sent.reduce((a, b) => a + b, 0);
  }

  /** The next time an event is due, µs. */
  get next(): number {
    return this.due.reduce((m, d) => Math.min(m, d), Number.POSITIVE_INFINITY);
  }

  tick(now: number): void {
    for (let j = 0; j < this.names.length; j++) {
      // Bounded catch-up after a stall: at most 100 events per stream and tick.
      for (let burst = 0; this.due[j] <= now && burst < 100; burst++) {
        this.due[j] += this.periodUs[j];
        const n = ++this.sent[j];
        const task = this.sender
          .send(this.names[j], { s: this.indexes[j], n, t: nowUs(), pad: this.pad })
          .then(
            (seq) => void (this.finals[j] = Math.max(this.finals[j], seq)),
            () => void errors++,
          )
          .finally(() => this.inFlight.delete(task));
        this.inFlight.add(task);
      }
    }
  }
}

async function main(): Promise<void> {
  if (!['direct', 'http', 'both', 'baseline'].includes(mode)) throw new Error(`LOAD_PUBLISH must be direct, http, both or baseline, not ${mode}`);
  const sender = await makeSender();
  let steady: Schedule | null = null;
  let burst: Schedule | null = null;
  /** Events of bursts already over (stats counts every event sent). */
  let burstSent = 0;
  let pad = '';
  let timer: NodeJS.Timeout | null = null;
  const inFlight = new Set<Promise<unknown>>();

  const loop = () => {
    const now = nowUs();
    steady?.tick(now);
    burst?.tick(now);
    // Sleep until the next event is due (at most 50 ms, so a stop is noticed).
    const wait = (Math.min(steady?.next ?? Infinity, burst?.next ?? Infinity) - nowUs()) / 1000;
    timer = setTimeout(loop, Math.max(0, Math.min(50, wait)));
  };
  const running = () => {
    if (!timer) loop();
  };

  serveRequests({
    /** streams: [{ name, index, rate }] — rate in events/s; phases spread over one period. */
    start: (request) => {
      pods = request.pods as string[];
      podAlive = pods.map(() => true);
      pad = 'x'.repeat(Number(request.padBytes ?? 0));
      steady = new Schedule(request.streams as Array<{ name: string; index: number; rate: number }>, sender, pad, inFlight);
      running();
    },
    /**
     * The publish-only phase: publishes these streams too, for `durationMs`, then waits for
     * their sends to settle; answers what was sent and the last seq (counter) per stream.
     */
    burst: async (request) => {
      const schedule = new Schedule(request.streams as Array<{ name: string; index: number; rate: number }>, sender, pad, inFlight);
      burst = schedule;
      running();
      await new Promise((resolve) => setTimeout(resolve, Number(request.durationMs)));
      burst = null;
      burstSent += schedule.total;
      await Promise.allSettled([...inFlight]);
      await sender.flush();
      return { indexes: schedule.indexes, sent: schedule.total, finals: schedule.finals, errors };
    },
    pods: (request) => void (podAlive = request.alive as boolean[]),
    stats: () => ({ sent: (steady?.total ?? 0) + burstSent + (burst?.total ?? 0), errors, httpRetries, inFlight: inFlight.size, cpu: cpuNow() }),
    /** Stops publishing, waits for every send to settle, answers the last seq (n) per stream index. */
    stop: async () => {
      if (timer) clearTimeout(timer);
      timer = null;
      await Promise.allSettled([...inFlight]);
      await sender.flush();
      return { indexes: steady?.indexes ?? [], sent: steady?.sent ?? [], finals: steady?.finals ?? [], errors, httpRetries };
    },
  });
  process.send?.({ ready: true });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
