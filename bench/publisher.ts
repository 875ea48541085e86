import { createShardedAdapter } from '@socket.io/redis-adapter';
import Redis from 'ioredis';
import { Server } from 'socket.io';
import { DEFAULT_RETENTION, StreamPublisher } from '@app/backplane';
import type { StreamName } from '@app/protocol';
import { createRedis, waitForReady } from '@app/runtime';
import { benchPayload, cpuNow, nowUs, serveRequests, sleep } from './common';

/**
 * The publishing side of one path, as its own process (forked by bench/run.ts):
 *   BENCH_MODE=stream   — StreamPublisher: the Lua script (seq, history, SPUBLISH), as workers do;
 *   BENCH_MODE=baseline — a socket.io server with the sharded Redis adapter and no sockets,
 *                         doing `io.to(room).emit` (no sequencing, no history).
 */
const mode = process.env.BENCH_MODE;
const redisUrl = process.env.REDIS_URL ?? '';

interface Sender {
  /** Starts sending one event; the promise settles when Redis has taken it. */
  send(target: string, n: number): Promise<unknown>;
  /** Settles once everything sent so far has reached Redis. */
  flush(pending: Promise<unknown>[]): Promise<unknown>;
}

async function streamSender(): Promise<Sender> {
  const redis = createRedis({ url: redisUrl, role: 'bench-publisher' });
  await waitForReady(redis);
  const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
  return {
    send: (target, n) => publisher.publish(target as StreamName, { type: 'bench_tick', payload: benchPayload(n) }),
    flush: (pending) => Promise.all(pending),
  };
}

async function baselineSender(): Promise<Sender> {
  const pub = new Redis(redisUrl);
  const sub = new Redis(redisUrl);
  await Promise.all([waitForReady(pub), waitForReady(sub)]);
  const io = new Server({ adapter: createShardedAdapter(pub, sub, { subscriptionMode: 'dynamic' }) });
  return {
    send: (target, n) => {
      io.to(target).emit('event', benchPayload(n));
      return Promise.resolve();
    },
    // `emit` gives no promise, but the adapter issues its SPUBLISH synchronously on this one
    // connection, and Redis answers in order: a PING answered means all of them were taken.
    flush: () => pub.ping(),
  };
}

async function main(): Promise<void> {
  const sender = mode === 'stream' ? await streamSender() : mode === 'baseline' ? await baselineSender() : null;
  if (!sender) throw new Error(`BENCH_MODE must be stream or baseline, not ${mode}`);

  serveRequests({
    cpu: () => cpuNow(),
    /**
     * `rate` 0: as fast as possible, in chunks awaited one after the other (so the offered
     * load is bounded by what Redis takes, the same way on both paths). Otherwise an open
     * loop at `rate` events/s: sends are never held back by slow answers.
     */
    run: async (request) => {
      const target = String(request.target);
      const count = Number(request.count);
      const rate = Number(request.rate);
      const chunk = Number(request.chunk ?? 256);
      const cpuBefore = cpuNow();
      const startUs = nowUs();
      let sent = 0;
      const inFlight: Promise<unknown>[] = [];
      while (sent < count) {
        if (rate > 0) {
          const due = Math.min(count, Math.floor(((nowUs() - startUs) * rate) / 1e6) + 1);
          while (sent < due) inFlight.push(sender.send(target, sent++));
          await sleep(1);
        } else {
          const batch: Promise<unknown>[] = [];
          const end = Math.min(count, sent + chunk);
          while (sent < end) batch.push(sender.send(target, sent++));
          await sender.flush(batch);
        }
      }
      await sender.flush(inFlight);
      const endUs = nowUs();
      const cpuAfter = cpuNow();
      return {
        sent,
        startUs,
        endUs,
        cpuUs: cpuAfter.userUs - cpuBefore.userUs + cpuAfter.systemUs - cpuBefore.systemUs,
      };
    },
  });
  process.send?.({ ready: true });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
