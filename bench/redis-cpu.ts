import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import Redis, { Cluster } from 'ioredis';
import { DEFAULT_RETENTION, type RetentionPolicy, StreamPublisher, streamChannel } from '@app/backplane';
import type { EventDraft, StreamName } from '@app/protocol';
import { CLUSTER_SLOTS_REFRESH_MS, type RedisClient, RedisClusterProcess, RedisServerProcess } from '@app/runtime';
import { PerStreamPublisher } from './previous-publisher';
import { nowUs, percentile, redisCpuUs } from './common';

/**
 * Redis CPU per published event, on one private redis-server, side by side in one run:
 *   - `spublish`: a bare SPUBLISH of the same message the scripts send (no seq, no history),
 *     one command per event as it is issued;
 *   - `v2`: the publish path before calls were shared across streams: rtPublishV2, one call
 *     per stream at a time (bench/previous-publisher.ts keeps it as the baseline);
 *   - `new`: StreamPublisher as it is (rtPublishV5: one call per script target — every
 *     stream, on one Redis — at a time, carrying whatever queued meanwhile);
 *   - optional (BENCH_VARIANTS): `linger`, StreamPublisher with `lingerMs` = BENCH_LINGER_MS
 *     (2); `autopipe`, StreamPublisher on an ioredis connection with `enableAutoPipelining`.
 * Scenarios, closed loop (the next publish waits for answers): one publisher awaiting each
 * publish; four publishers (own connections) keeping 64 publishes each in flight on one
 * stream, and the same on 16 streams; one publisher running 32 loops that each await their
 * own publish on their own stream (a worker with 32 jobs). Open loop, steady (the shape of
 * real load, e.g. bots publishing a few events a second each, or the load kit): one publisher
 * process sends S streams' events at a total rate R, each stream at R/S with its phase spread
 * over the period, from a timer loop as load/publisher-worker.ts does; a publish never waits
 * for an earlier one. Two subscriber connections (two "pods") SSUBSCRIBE every channel.
 * Redis CPU = delta of INFO cpu used_cpu_user + used_cpu_sys over the run, divided by the
 * events. Rounds rotate the order of the variants; tables give the median over rounds.
 * BENCH_CLUSTER=1 runs it all on a private 3-master Redis Cluster (no replicas) instead:
 * Redis CPU is then the sum over the masters.
 *
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register bench/redis-cpu.ts
 *   BENCH_ROUNDS (5), BENCH_SEQ_EVENTS (3000), BENCH_CONC_EVENTS (20000), BENCH_STEADY_S (4),
 *   BENCH_VARIANTS (spublish,v2,new), BENCH_SCENARIOS (all; comma-separated keys),
 *   BENCH_LINGER_MS (2), BENCH_SUFFIX (appended to the result file's name)
 */

function intEnv(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

const ROUNDS = intEnv('BENCH_ROUNDS', 5);
const SEQ_EVENTS = intEnv('BENCH_SEQ_EVENTS', 3_000);
const CONC_EVENTS = intEnv('BENCH_CONC_EVENTS', 20_000);
const STEADY_S = intEnv('BENCH_STEADY_S', 4);
const LINGER_MS = intEnv('BENCH_LINGER_MS', 2);
const PUBLISHERS = 4;
const IN_FLIGHT = 64;
const MANY_STREAMS = 16;
/** Default retention but 500 events kept, so a warm-up of ~900 per stream reaches steady trimming. */
const RETENTION: RetentionPolicy = { ...DEFAULT_RETENTION, maxEvents: 500 };
const CONTENT = 'x'.repeat(256);
const CLUSTER = process.env.BENCH_CLUSTER === '1';

/** The bench payload of bench/common.ts: a 256-byte string, two ids, a counter, a time. */
function draft(n: number): EventDraft {
  return { type: 'thinking', payload: { runId: 'bench-run', sessionId: 'bench-session', content: CONTENT, sentUs: Date.now() * 1000, n } };
}

interface Sender {
  publish(stream: StreamName, n: number): Promise<unknown>;
  drain(): Promise<void>;
}

type Variant = 'spublish' | 'v2' | 'new' | 'linger' | 'autopipe';
const ALL_VARIANTS: Variant[] = ['spublish', 'v2', 'new', 'linger', 'autopipe'];
const VARIANTS = (process.env.BENCH_VARIANTS ?? 'spublish,v2,new').split(',').filter((v): v is Variant => ALL_VARIANTS.includes(v as Variant));
const LABELS: Record<Variant, string> = {
  spublish: 'bare SPUBLISH',
  v2: 'per stream (v2)',
  new: 'per target (new)',
  linger: `per target, linger ${LINGER_MS} ms`,
  autopipe: 'per target, autopipelining',
};

function sender(variant: Variant, redis: RedisClient): Sender {
  if (variant === 'v2') {
    const publisher = new PerStreamPublisher(redis, RETENTION);
    return { publish: (stream, n) => publisher.publish(stream, draft(n)), drain: () => publisher.drain() };
  }
  if (variant !== 'spublish') {
    const options = variant === 'linger' ? { lingerMs: LINGER_MS } : {};
    const publisher = new StreamPublisher(redis, RETENTION, (error) => console.error('compaction failed', error), options);
    return { publish: (stream, n) => publisher.publish(stream, draft(n)), drain: () => publisher.drain() };
  }
  // The message the scripts send for this event (same bytes), with a made-up seq and epoch.
  return {
    publish: (stream, n) => {
      const event = draft(n);
      const envelope = `{"v":1,"stream":${JSON.stringify(stream)},"seq":${n + 1},"epoch":"${randomUUID()}","ts":${Date.now()},"id":"${randomUUID()}","type":"${event.type}","payload":${JSON.stringify(event.payload)}}`;
      return redis.spublish(streamChannel(stream), `{"kind":"event","envelope":${envelope}}`);
    },
    drain: async () => undefined,
  };
}

interface Scenario {
  key: string;
  label: string;
  /**
   * `chunks`: each publisher sends `inFlight` publishes, awaits them all, repeats; `loops`:
   * one publisher runs `inFlight` loops, loop l awaiting each publish on stream l; `steady`:
   * one publisher, open loop at `rate` events/s over `streams` streams for BENCH_STEADY_S.
   */
  kind: 'chunks' | 'loops' | 'steady';
  publishers: number;
  inFlight: number;
  streams: number;
  /** Events per run (steady: rate × seconds). */
  events: number;
  rate?: number;
}

const steady = (streams: number, rate: number): Scenario => ({
  key: `steady-${streams}-${rate / 1000}k`,
  label: `steady, ${streams} streams, ${rate.toLocaleString('en-US')} events/s in all (${rate / streams}/s each), 1 publisher`,
  kind: 'steady',
  publishers: 1,
  inFlight: 0,
  streams,
  events: rate * STEADY_S,
  rate,
});

const ALL_SCENARIOS: Scenario[] = [
  { key: 'seq', label: '1 publisher, sequential (awaits each publish)', kind: 'chunks', publishers: 1, inFlight: 1, streams: 1, events: SEQ_EVENTS },
  {
    key: 'conc',
    label: `${PUBLISHERS} publishers × ${IN_FLIGHT} in flight, 1 stream`,
    kind: 'chunks',
    publishers: PUBLISHERS,
    inFlight: IN_FLIGHT,
    streams: 1,
    events: CONC_EVENTS,
  },
  {
    key: 'many',
    label: `${PUBLISHERS} publishers × ${IN_FLIGHT} in flight, ${MANY_STREAMS} streams`,
    kind: 'chunks',
    publishers: PUBLISHERS,
    inFlight: IN_FLIGHT,
    streams: MANY_STREAMS,
    events: CONC_EVENTS,
  },
  {
    key: 'jobs',
    label: '1 publisher, 32 loops each awaiting its publish on its own stream',
    kind: 'loops',
    publishers: 1,
    inFlight: 32,
    streams: 32,
    events: CONC_EVENTS,
  },
  steady(50, 1_000),
  steady(500, 5_000),
  steady(500, 10_000),
  steady(500, 20_000),
];
const SCENARIOS = process.env.BENCH_SCENARIOS ? ALL_SCENARIOS.filter((s) => (process.env.BENCH_SCENARIOS ?? '').split(',').includes(s.key)) : ALL_SCENARIOS;

/** One private redis-server, or a 3-master cluster: where the bench connects, and the masters whose CPU counts. */
interface Topology {
  connect(options?: { autoPipelining?: boolean }): Promise<RedisClient>;
  /** A plain connection to each master (INFO cpu, INFO commandstats). */
  masters: Redis[];
  dispose(): Promise<void>;
}

async function topology(): Promise<Topology> {
  if (!CLUSTER) {
    const server = await RedisServerProcess.start({ persistent: false });
    const connect = async (options: { autoPipelining?: boolean } = {}) => {
      const redis = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 3, enableAutoPipelining: options.autoPipelining ?? false });
      await redis.connect();
      return redis;
    };
    return { connect, masters: [(await connect()) as Redis], dispose: () => server.dispose() };
  }
  const cluster = await RedisClusterProcess.start({ masters: 3, replicasPerMaster: 0, persistent: false });
  const seeds = cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
  const connect = async (options: { autoPipelining?: boolean } = {}) => {
    const redis = new Cluster(seeds, {
      shardedSubscribers: true,
      slotsRefreshInterval: CLUSTER_SLOTS_REFRESH_MS,
      enableAutoPipelining: options.autoPipelining ?? false,
      redisOptions: { maxRetriesPerRequest: 3 },
    });
    await new Promise<void>((resolve, reject) => redis.once('ready', resolve).once('error', reject));
    return redis;
  };
  const masters = await Promise.all(
    cluster.nodes.map(async (node) => {
      const redis = new Redis(node.url, { lazyConnect: true });
      await redis.connect();
      return redis;
    }),
  );
  return { connect, masters, dispose: () => cluster.dispose() };
}

async function sumOver(masters: Redis[], read: (redis: Redis) => Promise<number>): Promise<number> {
  return (await Promise.all(masters.map(read))).reduce((a, b) => a + b, 0);
}

/**
 * Script calls so far, and the µs Redis spent running the publish commands themselves (script
 * runs, or bare SPUBLISHes), from `INFO commandstats`: what the rest of its CPU is not —
 * reading requests, writing replies and messages, waking up.
 */
async function commandStats(masters: Redis[], variant: Variant): Promise<{ scriptCalls: number; commandUs: number }> {
  const info = (await Promise.all(masters.map((m) => m.info('commandstats')))).join('\n');
  const sum = (pattern: RegExp, group: number) => [...info.matchAll(pattern)].reduce((total, m) => total + Number(m[group]), 0);
  const scriptCalls = sum(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm, 1);
  // A script's own usec includes the commands it runs (those are counted on their own too).
  const commandUs = variant === 'spublish' ? sum(/^cmdstat_spublish:calls=\d+,usec=(\d+)/gm, 1) : sum(/^cmdstat_(?:evalsha|eval):calls=\d+,usec=(\d+)/gm, 1);
  return { scriptCalls, commandUs };
}

interface Sample {
  cpuUsPerEvent: number;
  /** Of which running the commands (scripts or SPUBLISH), per `INFO commandstats`. */
  commandUsPerEvent: number;
  eventsPerSecond: number;
  callsPerEvent: number;
  /** Publish to answer, ms (steady scenarios only). */
  p50Ms?: number;
  p99Ms?: number;
}

/** Runs the scenario's publishes through `senders`; resolves with the events sent and, open loop, each publish's time to its answer (µs). */
async function drive(senders: Sender[], scenario: Scenario, streams: StreamName[], count: number): Promise<{ events: number; latenciesUs?: number[] }> {
  if (scenario.kind === 'steady') return driveSteady(senders[0], streams, scenario.rate ?? 1000, count);
  if (scenario.kind === 'loops') {
    let next = 0;
    await Promise.all(
      streams.map(async (stream) => {
        while (next < count) await senders[0].publish(stream, next++);
      }),
    );
    await senders[0].drain();
    return { events: count };
  }
  const perPublisher = Math.ceil(count / senders.length);
  await Promise.all(
    senders.map(async (s, p) => {
      for (let sent = 0; sent < perPublisher; ) {
        const chunk: Promise<unknown>[] = [];
        for (let i = 0; i < scenario.inFlight && sent < perPublisher; i++, sent++) chunk.push(s.publish(streams[(p + sent) % streams.length], sent));
        await Promise.all(chunk);
      }
      await s.drain();
    }),
  );
  return { events: perPublisher * senders.length };
}

/** Open loop, as load/publisher-worker.ts: every stream at rate / streams, phases spread; `count` events in all. */
async function driveSteady(s: Sender, streams: StreamName[], rate: number, count: number): Promise<{ events: number; latenciesUs: number[] }> {
  const periodUs = (1e6 * streams.length) / rate;
  const start = nowUs() + 2_000;
  const due = streams.map((_, j) => start + (periodUs * j) / streams.length);
  const latenciesUs: number[] = [];
  const pending = new Set<Promise<unknown>>();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const loop = () => {
      const now = nowUs();
      for (let j = 0; j < streams.length && sent < count; j++) {
        for (let burst = 0; due[j] <= now && burst < 100 && sent < count; burst++) {
          due[j] += periodUs;
          const t0 = nowUs();
          const task = s.publish(streams[j], sent++).then(() => void latenciesUs.push(nowUs() - t0));
          pending.add(task);
          void task.finally(() => pending.delete(task));
        }
      }
      if (sent >= count) return resolve();
      const wait = (due.reduce((m, d) => Math.min(m, d), Number.POSITIVE_INFINITY) - nowUs()) / 1000;
      setTimeout(loop, Math.max(0, Math.min(50, wait)));
    };
    loop();
  });
  await Promise.all([...pending]);
  await s.drain();
  return { events: sent, latenciesUs };
}

async function main(): Promise<void> {
  const where = await topology();
  const stop = () => void where.dispose();
  process.on('exit', stop);
  try {
    const admin = where.masters[0];
    const pods = [await where.connect(), await where.connect()];
    let received = 0;
    for (const pod of pods) pod.on('smessage', () => received++);

    // The cost of the epoch fence alone: reading master_replid in a script.
    await admin.config('RESETSTAT');
    const loops = 100_000;
    await admin.eval(
      `for i = 1, ${loops} do local info = redis.call('INFO', 'replication'); local at = string.find(info, 'master_replid:', 1, true); local r = string.sub(info, at + 14, at + 53) end return 1`,
      0,
    );
    const fenceUs = Number(/usec=(\d+)/.exec((await admin.info('commandstats')).split('\n').find((l) => l.startsWith('cmdstat_eval:')) ?? '')?.[1]) / loops;

    const samples = new Map<string, Sample[]>();
    // Steady scenarios share one set of streams per variant (the first S of them), warmed once.
    const steadyStreams = Math.max(0, ...SCENARIOS.filter((s) => s.kind === 'steady').map((s) => s.streams));
    const streamsOf = (scenario: Scenario, variant: Variant) =>
      Array.from({ length: scenario.streams }, (_, i) => `bot:cpu-${scenario.kind === 'steady' ? 'steady' : scenario.key}-${variant}-${i}` as StreamName);
    const warmSets = new Map<string, { scenario: Scenario; variant: Variant }>();
    for (const scenario of SCENARIOS) {
      const shape = scenario.kind === 'steady' ? { ...scenario, key: 'steady', streams: steadyStreams } : scenario;
      for (const variant of VARIANTS) warmSets.set(`${shape.key}/${variant}`, { scenario: shape, variant });
    }
    for (const { scenario, variant } of warmSets.values()) {
      const channels = streamsOf(scenario, variant).map((s) => streamChannel(s));
      // A cluster routes an SSUBSCRIBE by its channels' slot: one channel per command there.
      const step = CLUSTER ? 1 : 100;
      for (let i = 0; i < channels.length; i += step) for (const pod of pods) await pod.ssubscribe(...channels.slice(i, i + step));
    }
    const connections: RedisClient[] = [];
    const senders = new Map<Variant, Sender[]>();
    for (const variant of VARIANTS) {
      const list: Sender[] = [];
      for (let p = 0; p < PUBLISHERS; p++) {
        const redis = await where.connect({ autoPipelining: variant === 'autopipe' });
        connections.push(redis);
        list.push(sender(variant, redis));
      }
      senders.set(variant, list);
    }

    // Warm-up: every stream past its retention (trimming in steady state) and checkpointed.
    const warm = RETENTION.maxEvents + 2 * RETENTION.checkpointEvery;
    for (const { scenario, variant } of warmSets.values()) {
      if (variant === 'spublish') continue;
      const streams = streamsOf(scenario, variant);
      const shape: Scenario = { ...scenario, kind: 'chunks', publishers: PUBLISHERS, inFlight: IN_FLIGHT };
      await drive(senders.get(variant) as Sender[], shape, streams, warm * streams.length);
    }
    console.log(`warmed up; fence (INFO replication + find) ${fenceUs.toFixed(2)} µs per script call`);

    for (let round = 0; round < ROUNDS; round++) {
      for (const scenario of SCENARIOS) {
        const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
        for (const variant of order) {
          const streams = streamsOf(scenario, variant);
          const list = (senders.get(variant) as Sender[]).slice(0, scenario.publishers);
          const stats0 = await commandStats(where.masters, variant);
          const received0 = received;
          const cpu0 = await sumOver(where.masters, redisCpuUs);
          const t0 = process.hrtime.bigint();
          const { events, latenciesUs } = await drive(list, scenario, streams, scenario.events);
          const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
          const expected = received0 + events * pods.length;
          const deadline = Date.now() + 30_000;
          while (received < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
          if (received < expected) throw new Error(`${variant} ${scenario.key}: ${expected - received} messages missing`);
          const cpu1 = await sumOver(where.masters, redisCpuUs);
          const stats1 = await commandStats(where.masters, variant);
          const sample: Sample = {
            cpuUsPerEvent: (cpu1 - cpu0) / events,
            commandUsPerEvent: (stats1.commandUs - stats0.commandUs) / events,
            eventsPerSecond: events / elapsedS,
            callsPerEvent: (stats1.scriptCalls - stats0.scriptCalls) / events,
          };
          if (latenciesUs) {
            const sorted = Float64Array.from(latenciesUs).sort();
            sample.p50Ms = percentile(sorted, 50) / 1000;
            sample.p99Ms = percentile(sorted, 99) / 1000;
          }
          const key = `${scenario.key}/${variant}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          console.log(
            `round ${round + 1} ${key.padEnd(24)} ${sample.cpuUsPerEvent.toFixed(2)} µs/event (commands ${sample.commandUsPerEvent.toFixed(2)})  ${Math.round(sample.eventsPerSecond)} events/s  ${sample.callsPerEvent.toFixed(3)} calls/event${
              sample.p99Ms !== undefined ? `  answer p50 ${sample.p50Ms?.toFixed(2)} ms p99 ${sample.p99Ms.toFixed(2)} ms` : ''
            }`,
          );
        }
      }
    }

    const report = render(samples, fenceUs);
    console.log(`\n${report}`);
    const dir = join(__dirname, 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `redis-cpu-${new Date().toISOString().slice(0, 10)}${CLUSTER ? '-cluster' : ''}${process.env.BENCH_SUFFIX ?? ''}.md`);
    writeFileSync(file, report);
    console.log(`written to ${file}`);
    await Promise.all([...where.masters, ...pods, ...connections].map((c) => c.quit().catch(() => undefined)));
  } finally {
    await where.dispose();
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const fmt = (value: number, digits = 2) => value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function render(samples: Map<string, Sample[]>, fenceUs: number): string {
  const values = (key: string, pick: (s: Sample) => number | undefined) =>
    (samples.get(key) ?? []).map(pick).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const med = (key: string, pick: (s: Sample) => number | undefined) => median(values(key, pick));
  const cell = (key: string, pick: (s: Sample) => number | undefined, digits = 2) => {
    const list = values(key, pick);
    return list.length ? `${fmt(median(list), digits)} (${fmt(Math.min(...list), digits)}–${fmt(Math.max(...list), digits)})` : 'n/a';
  };
  const cpu = (s: Sample) => s.cpuUsPerEvent;
  const has = (v: Variant) => VARIANTS.includes(v);
  const ratio = (a: Variant, b: Variant, scenario: Scenario) =>
    has(a) && has(b) ? fmt(med(`${scenario.key}/${a}`, cpu) / med(`${scenario.key}/${b}`, cpu)) : 'n/a';
  const lines: string[] = [];
  lines.push(`# Redis CPU per published event — ${new Date().toISOString().slice(0, 10)}`, '');
  lines.push('Produced by `bench/redis-cpu.ts` (see its header for the method).', '');
  lines.push(
    `- Machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), shared with other jobs; load average at the end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}.`,
    `- ${
      CLUSTER
        ? 'A private Redis Cluster of 3 masters, no replicas (redis-server 7.0, no persistence); Redis CPU is the sum over the masters'
        : `One private redis-server ${process.env.REDIS_VERSION ?? '7.0'} (no persistence)`
    }, two subscriber connections SSUBSCRIBEd to every channel (two pods), publishers in one Node ${process.version} process (ioredis), which shares the 2 cores with Redis.`,
    `- Payload: the bench event of bench/common.ts (256-byte string, two ids, a counter, a time), type \`thinking\`; retention ${RETENTION.maxEvents.toLocaleString('en-US')} events (every stream warmed past it first, so trimming runs), age limit 24 h, trims when a stream's seq passes a multiple of 16, checkpoint every ${RETENTION.checkpointEvery} (folds included), idle TTL 7 days.`,
    `- ${ROUNDS} rounds; each round runs every scenario with the variants in rotating order; steady scenarios run ${STEADY_S} s each. Cells: median µs of Redis CPU (INFO cpu, user + sys) per event, (min–max over rounds).`,
    '',
    `| scenario | ${VARIANTS.map((v) => LABELS[v]).join(' | ')} | new / v2 | new / SPUBLISH | script calls per event, new (compactions included) |`,
    `|---|${VARIANTS.map(() => '---:').join('|')}|---:|---:|---:|`,
  );
  for (const scenario of SCENARIOS) {
    lines.push(
      `| ${scenario.label} (${scenario.events.toLocaleString('en-US')} events) | ${VARIANTS.map((v) => cell(`${scenario.key}/${v}`, cpu)).join(' | ')} | ${ratio('new', 'v2', scenario)} | ${ratio('new', 'spublish', scenario)} | ${
        has('new')
          ? fmt(
              med(`${scenario.key}/new`, (s) => s.callsPerEvent),
              3,
            )
          : 'n/a'
      } |`,
    );
  }
  lines.push(
    '',
    'Events per second taken (closed loop: publisher-bound, the Node process shares the 2 cores with Redis; steady: the offered rate when kept up), median:',
    '',
  );
  lines.push(`| scenario | ${VARIANTS.map((v) => LABELS[v]).join(' | ')} |`, `|---|${VARIANTS.map(() => '---:').join('|')}|`);
  for (const scenario of SCENARIOS) {
    lines.push(
      `| ${scenario.label} | ${VARIANTS.map((v) =>
        fmt(
          med(`${scenario.key}/${v}`, (s) => s.eventsPerSecond),
          0,
        ),
      ).join(' | ')} |`,
    );
  }
  const steadyScenarios = SCENARIOS.filter((s) => s.kind === 'steady');
  if (steadyScenarios.length) {
    lines.push('', 'Steady scenarios, publish → answer (the publisher awaiting Redis, linger included), median over rounds of each run’s p50 / p99, ms:', '');
    lines.push(`| scenario | ${VARIANTS.map((v) => LABELS[v]).join(' | ')} |`, `|---|${VARIANTS.map(() => '---:').join('|')}|`);
    for (const scenario of steadyScenarios) {
      lines.push(
        `| ${scenario.label} | ${VARIANTS.map((v) => `${fmt(med(`${scenario.key}/${v}`, (s) => s.p50Ms))} / ${fmt(med(`${scenario.key}/${v}`, (s) => s.p99Ms))}`).join(' | ')} |`,
      );
    }
    lines.push('', 'Script calls per event in the steady scenarios (events per call = the inverse), median:', '');
    const scripted = VARIANTS.filter((v) => v !== 'spublish');
    lines.push(`| scenario | ${scripted.map((v) => LABELS[v]).join(' | ')} |`, `|---|${scripted.map(() => '---:').join('|')}|`);
    for (const scenario of steadyScenarios) {
      lines.push(
        `| ${scenario.label} | ${scripted
          .map((v) =>
            fmt(
              med(`${scenario.key}/${v}`, (s) => s.callsPerEvent),
              3,
            ),
          )
          .join(' | ')} |`,
      );
    }
  }
  lines.push(
    '',
    `The epoch fence (reading \`master_replid\` from \`INFO replication\` inside the script) costs ${fmt(fenceUs)} µs per script call here, measured alone (100,000 reads in one script): once per call, whatever streams it carries.`,
    '',
  );
  return lines.join('\n');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
