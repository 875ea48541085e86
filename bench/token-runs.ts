import 'reflect-metadata';
import { Producer, producerIds, StreamPublisher } from '@app/backplane';
import { type BotEvent, botStream, type StreamName } from '@app/protocol';
import { createRedis, waitForReady } from '@app/runtime';
import { loadWorkerConfig } from '../apps/worker/src/config/worker-config';
import { DeltaCoalescer } from '../apps/worker/src/ops/delta-coalescer';
import { cpuNow, nowUs, serveRequests } from './common';

/**
 * The worker side of bench/coalescing.ts, as its own process: agent runs on their own bot
 * streams, each streaming a reply at a steady token rate through what a worker publishes
 * with — one DeltaCoalescer per run (the window comes with each request; 0 = a delta per
 * token) in front of one StreamPublisher built from the worker's default configuration.
 *
 * The provider is a clock: token i of a reply is due at the reply's start + i / rate, is
 * produced by a 1 ms ticker once due, and reads `<i>@<due µs, base 36> `, so the watchers can
 * check each reply token by token and time each token from its due time (a late ticker counts
 * against the path, not for it). A reply of its bot's length ends with `usage` (how many
 * tokens it produced) and `done`, then the bot's next run starts with `run_started`.
 */
const redisUrl = process.env.REDIS_URL ?? '';
const config = loadWorkerConfig({ REDIS_URL: redisUrl });

interface Bot {
  stream: StreamName;
  /** Tokens per reply: bots differ a little, so their replies do not end in step. */
  length: number;
  runs: number;
  out: DeltaCoalescer | null;
  runId: string;
  startUs: number;
  produced: number;
  /** Publishing its run's end or its next run's start: no tokens meanwhile. */
  busy: boolean;
  finished: boolean;
}

interface Counters {
  tokens: number;
  events: number;
  deltaEvents: number;
  replies: number;
  maxLagUs: number;
  errors: string[];
}

async function main(): Promise<void> {
  const redis = createRedis({ url: redisUrl, role: 'bench-token-runs' });
  await waitForReady(redis);
  const publisher = new StreamPublisher(redis, config.retention, undefined, config.publisher);
  let phase = 0;

  serveRequests({
    cpu: () => cpuNow(),
    /** Streams `runs` bots' replies at `rate` tokens/s each for `seconds`, then ends every reply and answers. */
    run: (request) => {
      const runs = Number(request.runs);
      const rate = Number(request.rate);
      const windowMs = Number(request.windowMs);
      const seconds = Number(request.seconds);
      const tag = `p${++phase}`;
      const counters: Counters = { tokens: 0, events: 0, deltaEvents: 0, replies: 0, maxLagUs: 0, errors: [] };
      const fail = (error: unknown) => {
        if (counters.errors.length < 5) counters.errors.push(error instanceof Error ? error.message : String(error));
      };
      // A bot whose run could not start or end is done for this request (its error is reported).
      const retire = (bot: Bot) => (error: unknown) => {
        fail(error);
        bot.finished = true;
      };
      const periodUs = 1e6 / rate;
      const cpuBefore = cpuNow();
      const startUs = nowUs();
      const stopUs = startUs + seconds * 1e6;
      const bots: Bot[] = Array.from({ length: runs }, (_, i) => ({
        stream: botStream(`tokens-${i}`),
        length: 200 + 50 * (i % 5),
        runs: 0,
        out: null,
        runId: '',
        startUs: 0,
        produced: 0,
        busy: true,
        finished: false,
      }));

      const ids = (bot: Bot) => ({ sessionId: `${bot.runId}.s`, runId: bot.runId });
      const begin = async (bot: Bot, notBeforeUs: number) => {
        bot.busy = true;
        bot.runId = `${tag}-${bot.stream.slice(4)}-${++bot.runs}`;
        // As the agent runtime does: every event stamped by the run's producer (one `SET … GET`
        // of its fence per call), after the processing claimed its epoch.
        const producer = new Producer(producerIds.run(bot.runId), 1);
        await publisher.fence(bot.stream, producer.id, producer.epoch);
        const send = (event: BotEvent) => {
          counters.events++;
          if (event.type === 'message') counters.deltaEvents++;
          return publisher.publish(bot.stream, event, { producer: producer.next() });
        };
        bot.out = new DeltaCoalescer(send, { windowMs });
        await bot.out.publish({ type: 'run_started', payload: { ...ids(bot), model: 'bench' } });
        bot.startUs = Math.max(nowUs(), notBeforeUs);
        bot.produced = 0;
        bot.busy = false;
      };
      const end = async (bot: Bot) => {
        bot.busy = true;
        const out = bot.out as DeltaCoalescer;
        const completionTokens = bot.produced;
        await out.publish({ type: 'usage', payload: { ...ids(bot), promptTokens: 0, completionTokens, totalTokens: completionTokens, totalCost: 0 } });
        await out.publish({ type: 'done', payload: { ...ids(bot), status: 'completed' } });
        counters.replies++;
        if (nowUs() < stopUs) await begin(bot, 0);
        else bot.finished = true;
      };

      return new Promise((resolve) => {
        const tick = () => {
          const now = nowUs();
          for (const bot of bots) {
            if (bot.busy || bot.finished) continue;
            const out = bot.out as DeltaCoalescer;
            for (let due = bot.startUs + bot.produced * periodUs; due <= now && bot.produced < bot.length && due < stopUs; due += periodUs) {
              const messageId = `${bot.runId}.reply`;
              const content = `${bot.produced}@${Math.round(due).toString(36)} `;
              out.publish({ type: 'message', payload: { ...ids(bot), messageId, role: 'assistant', content, delta: true } }).catch(fail);
              counters.tokens++;
              counters.maxLagUs = Math.max(counters.maxLagUs, now - due);
              bot.produced++;
            }
            if (bot.produced === bot.length || now >= stopUs) void end(bot).catch(retire(bot));
          }
          if (bots.every((bot) => bot.finished)) {
            clearInterval(ticker);
            const cpuAfter = cpuNow();
            resolve({
              ...counters,
              startUs,
              endUs: nowUs(),
              cpuUs: cpuAfter.userUs - cpuBefore.userUs + cpuAfter.systemUs - cpuBefore.systemUs,
            });
          }
        };
        const ticker = setInterval(tick, 1);
        // Bots start spread over one token period, as independent runs would.
        bots.forEach((bot, i) => void begin(bot, startUs + (i * periodUs) / runs).catch(retire(bot)));
      });
    },
  });
  process.send?.({ ready: true, defaultWindowMs: config.messageCoalesceMs });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
