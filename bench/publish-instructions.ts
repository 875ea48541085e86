import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { DEFAULT_RETENTION, type RetentionPolicy, StreamPublisher, streamChannel } from '@app/backplane';
import type { EventDraft, StreamName } from '@app/protocol';
import { RedisServerProcess } from '@app/runtime';

/**
 * Redis **instructions** per published event, counted by valgrind's callgrind in a private
 * redis-server: the same for the same binary, inputs and batch shapes whatever else the
 * machine does, so a change to the publish script can be compared with its parent to a
 * fraction of a percent, where Redis CPU time (bench/redis-cpu.ts, the load kit) moves by
 * ±10 % between runs here. It counts Redis' user-space work only: not the kernel's
 * (socket writes to subscribers, wake-ups) nor cache misses, which the CPU benches see.
 *
 * Each variant gets its own redis-server under callgrind, four subscriber connections
 * SSUBSCRIBEd to every channel (four pods), STREAMS streams warmed past their retention (so
 * trims run), then per scenario the counters are zeroed, the events published and the
 * counters dumped. Batches are deterministic: each round publishes one event on each of
 * `streams` streams `perStream` times in one tick and awaits them (StreamPublisher sends
 * them as one script call); the SPUBLISH variant pipelines the same messages.
 * Variants: `spublish` (bare SPUBLISH of the envelope), `script` (StreamPublisher as it is).
 *
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register bench/publish-instructions.ts
 *   npm run bench:publish-instructions   (about 30 s; writes bench/results/publish-instructions-<date>.md)
 *   BENCH_EVENTS (4096 per scenario), BENCH_OUT (another report file name under bench/results),
 *   BENCH_KEEP=1 (keep the dumps: `callgrind_annotate --inclusive=yes <dump>`; dump 1, 2, 3 are the scenarios)
 */

const EVENTS = Number(process.env.BENCH_EVENTS ?? 4096);
const STREAMS = 64;
const SUBSCRIBERS = 4;
/** 500 events kept, so a warm-up of ~600 per stream reaches steady trimming (as bench/redis-cpu.ts). */
const RETENTION: RetentionPolicy = { ...DEFAULT_RETENTION, maxEvents: 500 };
const CONTENT = 'x'.repeat(256);

interface Scenario {
  label: string;
  /** Streams in one call, and events of each. */
  streams: number;
  perStream: number;
}
const SCENARIOS: Scenario[] = [
  { label: '16 streams × 1 event per call (many bots, a few events a second each)', streams: 16, perStream: 1 },
  { label: '1 stream × 16 events per call (one busy stream)', streams: 1, perStream: 16 },
  { label: '1 event per call (one by one)', streams: 1, perStream: 1 },
];

function draft(n: number): EventDraft {
  return { type: 'thinking', payload: { runId: 'bench-run', sessionId: 'bench-session', content: CONTENT, sentUs: Date.now() * 1000, n } };
}

type Variant = 'spublish' | 'script';

async function measure(variant: Variant, dir: string): Promise<number[]> {
  const wrapper = join(dir, 'redis-under-callgrind.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file='${dir}/callgrind.out.%p' redis-server "$@"\n`);
  chmodSync(wrapper, 0o755);
  const server = await RedisServerProcess.start({ persistent: false, binary: wrapper });
  const redis = new Redis(server.url);
  const subscribers = Array.from({ length: SUBSCRIBERS }, () => new Redis(server.url));
  try {
    const pid = /process_id:(\d+)/.exec(await redis.info('server'))?.[1];
    if (!pid) throw new Error('no process_id in INFO');
    const streams = Array.from({ length: STREAMS }, (_, i) => `bot:instr-${i}` as StreamName);
    for (const sub of subscribers) await sub.ssubscribe(...streams.map(streamChannel));
    const publisher = new StreamPublisher(redis, RETENTION, (error) => console.error('compaction failed', error));
    let n = 0;
    let cursor = 0;
    const round = async (scenario: Scenario) => {
      const picked = Array.from({ length: scenario.streams }, () => streams[cursor++ % STREAMS]);
      if (variant === 'script') {
        const pending: Promise<unknown>[] = [];
        for (const stream of picked) for (let k = 0; k < scenario.perStream; k++) pending.push(publisher.publish(stream, draft(n++)));
        await Promise.all(pending);
        return;
      }
      const pipeline = redis.pipeline();
      for (const stream of picked)
        for (let k = 0; k < scenario.perStream; k++) {
          const event = draft(n++);
          const envelope = `{"v":1,"stream":"${stream}","seq":${n},"epoch":"${randomUUID()}","ts":${Date.now()},"id":"${randomUUID()}","type":"${event.type}","payload":${JSON.stringify(event.payload)}}`;
          pipeline.spublish(streamChannel(stream), envelope);
        }
      await pipeline.exec();
    };
    const warm: Scenario = { label: 'warm', streams: 16, perStream: 1 };
    for (let i = 0; i < (STREAMS * 600) / 16; i++) await round(warm);
    await publisher.drain();
    const counts: number[] = [];
    for (const [k, scenario] of SCENARIOS.entries()) {
      execFileSync('callgrind_control', ['-z', pid], { stdio: 'ignore' });
      const rounds = Math.ceil(EVENTS / (scenario.streams * scenario.perStream));
      for (let i = 0; i < rounds; i++) await round(scenario);
      await publisher.drain();
      execFileSync('callgrind_control', ['-d', pid], { stdio: 'ignore' });
      // Dumps are numbered from 1 in the order asked for.
      counts.push(instructionsOf(join(dir, `callgrind.out.${pid}.${k + 1}`)) / (rounds * scenario.streams * scenario.perStream));
    }
    return counts;
  } finally {
    await redis.quit().catch(() => undefined);
    for (const sub of subscribers) sub.disconnect();
    await server.dispose();
  }
}

/** A dump's `summary:` (every instruction counted between the zeroing and the dump). */
function instructionsOf(dump: string): number {
  if (!existsSync(dump)) throw new Error(`callgrind wrote no ${dump}`);
  const text = readFileSync(dump, 'utf8');
  const summary = /^summary:\s*(\d+)/m.exec(text) ?? /^totals:\s*(\d+)/m.exec(text);
  if (!summary) throw new Error(`no summary in ${dump}`);
  return Number(summary[1]);
}

async function main(): Promise<void> {
  if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('valgrind is not on PATH (Debian: apt-get install valgrind)');
  const variants: Variant[] = ['spublish', 'script'];
  const results = new Map<Variant, number[]>();
  for (const variant of variants) {
    const dir = mkdtempSync(join(tmpdir(), `rtgw-callgrind-${variant}-`));
    try {
      results.set(variant, await measure(variant, dir));
    } finally {
      // BENCH_KEEP=1 keeps the dumps for callgrind_annotate.
      if (process.env.BENCH_KEEP === '1') console.log(`${variant}: callgrind dumps in ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    }
  }
  const format = (x: number) => Math.round(x).toLocaleString('en-US');
  const lines = [
    `# Redis instructions per published event — ${new Date().toISOString().slice(0, 10)}`,
    '',
    'Produced by `bench/publish-instructions.ts` (see its header): valgrind callgrind counts of a private redis-server, per event; ' +
      `${EVENTS} events per scenario over ${STREAMS} warmed streams, ${SUBSCRIBERS} subscribers on every channel, retention 500 events.`,
    '',
    '| scenario | bare SPUBLISH | publish script | script / SPUBLISH |',
    '|---|---:|---:|---:|',
    ...SCENARIOS.map((s, i) => {
      const bare = results.get('spublish')![i];
      const script = results.get('script')![i];
      return `| ${s.label} | ${format(bare)} | ${format(script)} | ${(script / bare).toFixed(2)} |`;
    }),
    '',
  ];
  const report = lines.join('\n');
  console.log(report);
  const out = process.env.BENCH_OUT ?? `publish-instructions-${new Date().toISOString().slice(0, 10)}.md`;
  mkdirSync(join(__dirname, 'results'), { recursive: true });
  writeFileSync(join(__dirname, 'results', out), report);
  console.log(`report written to bench/results/${out}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
