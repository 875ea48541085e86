import { sleep } from '../bench/common';
import type { LoadConfig } from './config';
import type { IdleCpu } from './report';
import { Histogram } from './stats';
import { type LoadSystem, streamNames } from './system';

/**
 * The publish-only phase: what Redis spends per published event, and nothing else. The
 * steady phase's Redis CPU also pays for churn (connects, catch-ups, subscribes), presence
 * and checkpoints, divided by the few events a realistic fan-out load publishes; here churn
 * is off, every socket stays subscribed, and for `burstFor` seconds the publishers add
 * `burstRate` events/s over `burstStreams` extra streams. Each of those streams is watched
 * by a socket on every pod (so every pod subscribes to it and Redis fans each event out to
 * each pod, as for a stream watched everywhere), while deliveries stay at one per pod and
 * event. Redis CPU over the phase less its idle CPU (every socket connected, nothing
 * published) over as long, divided by the events published (the steady streams' included).
 */
export interface PublishOnly {
  seconds: number;
  events: number;
  eventsPerSec: number;
  redisCpuPerEvent: number;
  redisCpuPerEventNet: number;
  redisCores: number;
  watchers: number;
  deliveriesPerSec: number;
  p50: number;
  p99: number;
  lost: number;
  dup: number;
  /** Watcher subscriptions short of their stream's last seq at the end. */
  behind: number;
  publishErrors: number;
}

/** Subscriptions per watcher socket: under the gateway's 20 commands/s per socket. */
const PER_SOCKET = 10;

export async function publishOnly(sys: LoadSystem, cfg: LoadConfig, idle: IdleCpu, log: (line: string) => void): Promise<PublishOnly | null> {
  if (cfg.burstRate <= 0) return null;
  const first = streamNames(cfg).length;
  const streams = Array.from({ length: cfg.burstStreams }, (_, j) => ({
    name: `bot:load-burst-${j}`,
    index: first + j,
    rate: cfg.burstRate / cfg.burstStreams,
  }));
  const watch = await sys.clients[0].request<{ sockets: number; subscriptions: number }>(
    'burstWatch',
    {
      pods: sys.pods.map((p) => (p.alive ? p.url : null)),
      streams: streams.map((s) => s.name),
      firstIndex: first,
      token: sys.tokens[0],
      perSocket: PER_SOCKET,
    },
    120_000,
  );
  await sleep(1_000);
  const a = await sys.snapshot();
  const replies = await Promise.all(
    sys.publishers.map((p, i) =>
      p.request<{ indexes: number[]; finals: number[]; sent: number }>(
        'burst',
        { streams: streams.filter((_, j) => j % sys.publishers.length === i), durationMs: cfg.burstFor * 1000 },
        cfg.burstFor * 1000 + 120_000,
      ),
    ),
  );
  const b = await sys.snapshot();
  const finals = new Array<number>(streams.length).fill(0);
  for (const reply of replies) reply.indexes.forEach((index, j) => (finals[index - first] = reply.finals[j]));
  // Deliveries to the watchers are in flight for a while after the last publish: the client
  // answers once its watchers reached every final seq (or after 30 s).
  const seen = await sys.clients[0].request<{
    received: number;
    lost: number;
    dup: number;
    behind: number;
    latency: { counts: Uint32Array; total: number; maxUs: number };
  }>('burstResult', { finals, settleMs: 30_000 }, 60_000);
  const latency = new Histogram();
  latency.merge(seen.latency);
  const us = b.atUs - a.atUs;
  const events = b.published - a.published;
  const redisCpu = b.redisCpuUs - a.redisCpuUs;
  const result: PublishOnly = {
    seconds: us / 1e6,
    events,
    eventsPerSec: events / (us / 1e6),
    redisCpuPerEvent: redisCpu / Math.max(1, events),
    redisCpuPerEventNet: (redisCpu - (idle.redisUsPerSec * us) / 1e6) / Math.max(1, events),
    redisCores: redisCpu / us,
    watchers: watch.sockets,
    deliveriesPerSec: seen.received / (us / 1e6),
    p50: latency.percentileUs(50) / 1000,
    p99: latency.percentileUs(99) / 1000,
    lost: seen.lost,
    dup: seen.dup,
    behind: seen.behind,
    publishErrors: b.publishErrors - a.publishErrors,
  };
  log(
    `${sys.side}: publish-only: ${Math.round(result.eventsPerSec)} events/s over ${cfg.burstStreams} streams (+ the steady ones), ${watch.sockets} watcher sockets on ${sys.pods.length} pods; ` +
      `redis ${result.redisCpuPerEventNet.toFixed(1)} CPU-µs/event less idle (${result.redisCpuPerEvent.toFixed(1)} gross, ${result.redisCores.toFixed(2)} cores); ` +
      `watchers p50 ${result.p50.toFixed(1)} p99 ${result.p99.toFixed(1)} ms, lost ${result.lost}, dup ${result.dup}, behind ${result.behind}`,
  );
  return result;
}
