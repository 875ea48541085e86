import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { RedisServerProcess } from '@app/runtime';
import { type AppProcess, startGateway } from '../test/support/processes';
import { signToken } from '../test/support/tokens';
import { type CpuSample, HelperProcess, percentile, redisCpuUs, sleep } from './common';

/**
 * `npm run bench:coalescing`: token coalescing (PROTOCOL.md §9, `MESSAGE_COALESCE_MS`) on the
 * real path — agent runs streaming tokens through DeltaCoalescer and StreamPublisher
 * (bench/token-runs.ts) → a private redis-server → a gateway pod from the build → a subscribed
 * Socket.IO client per run's bot stream (bench/token-watchers.ts). Coalesced (the worker's
 * default window) and per token (window 0) run side by side in one run: four halves in ABBA
 * order, merged per mode, so a burst of other work on the machine lands on both. Writes
 * bench/results/coalescing-<date>.md.
 */

function intEnv(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

const CONFIG = {
  /** Concurrent runs, each on its own bot stream with one watching socket. */
  runs: intEnv('BENCH_RUNS', 200),
  tokensPerSecond: intEnv('BENCH_TOKENS_PER_SECOND', 100),
  /** Measured seconds per mode, run as two halves. */
  seconds: intEnv('BENCH_SECONDS', 30),
  warmUpSeconds: 3,
  deadlineMs: intEnv('BENCH_DEADLINE_MS', 240_000),
};

type Mode = 'coalesced' | 'perToken';

interface RunResult {
  tokens: number;
  events: number;
  deltaEvents: number;
  replies: number;
  maxLagUs: number;
  errors: string[];
  startUs: number;
  endUs: number;
  cpuUs: number;
}

interface WatchStats {
  events: number;
  tokens: number;
  replies: number;
  tokenErrors: number;
  replyErrors: number;
  seqErrors: number;
  lastUs: number;
  cpu: CpuSample;
  samples?: Float64Array;
}

/** One mode's halves added up. */
interface Totals {
  tokens: number;
  events: number;
  deltaEvents: number;
  replies: number;
  publishUs: number;
  wallUs: number;
  redisCpuUs: number;
  scriptCalls: number;
  podCpuUs: number;
  publisherCpuUs: number;
  watcherCpuUs: number;
  tokensReceived: number;
  repliesChecked: number;
  tokenErrors: number;
  replyErrors: number;
  seqErrors: number;
  maxLagUs: number;
  /** Last delivery after the last token was produced, worst half. */
  drainUs: number;
  samples: Float64Array[];
  errors: string[];
}

const cpuOf = (sample: CpuSample) => sample.userUs + sample.systemUs;
const startedAt = Date.now();
function log(line: string): void {
  console.log(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(5)} s] ${line}`);
}
function fmt(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a';
}

// Everything started here is recorded, so a failure anywhere stops it all.
const helpers: HelperProcess[] = [];
let gateway: AppProcess | null = null;
let redisServer: RedisServerProcess | null = null;
async function shutdown(code: number): Promise<never> {
  helpers.forEach((helper) => helper.kill());
  await gateway?.kill();
  const server = redisServer;
  redisServer = null;
  await server?.dispose().catch(() => undefined);
  process.exit(code);
}
process.on('exit', () => {
  helpers.forEach((helper) => helper.kill());
  // dispose() sends SIGKILL before its first await, so this works in an 'exit' handler.
  void redisServer?.dispose();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void shutdown(130));

/** Script calls Redis ran so far (the publish script and any other), from `INFO commandstats`. */
async function scriptCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  return ['evalsha', 'eval'].reduce((sum, command) => sum + Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0), 0);
}

async function podCpuUs(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return Math.round((metric('rtgw_process_cpu_user_seconds_total') + metric('rtgw_process_cpu_system_seconds_total')) * 1e6);
}

class Bench {
  readonly totals: Record<Mode, Totals> = { coalesced: emptyTotals(), perToken: emptyTotals() };

  constructor(
    private readonly redis: Redis,
    private readonly podUrl: string,
    private readonly publisher: HelperProcess,
    private readonly watchers: HelperProcess,
    readonly windows: Record<Mode, number>,
  ) {}

  /** Polls the watchers until every token and reply arrived, or none arrived for 5 s. */
  private async awaitDelivery(tokens: number, replies: number, samples: boolean): Promise<WatchStats> {
    let last = -1;
    let progressAt = Date.now();
    for (;;) {
      const stats = await this.watchers.request<WatchStats>('stats', { samples: false });
      if (stats.tokens !== last) {
        last = stats.tokens;
        progressAt = Date.now();
      }
      if ((stats.tokens >= tokens && stats.replies >= replies) || Date.now() - progressAt > 5_000) {
        return samples ? this.watchers.request<WatchStats>('stats', { samples: true }) : stats;
      }
      await sleep(50);
    }
  }

  /** One stretch of `seconds` in one mode; added to the mode's totals unless it is a warm-up. */
  async stretch(mode: Mode, seconds: number, measured: boolean): Promise<void> {
    const reset = await this.watchers.request<{ cpu: CpuSample }>('reset', { sample: measured });
    const wallBefore = process.hrtime.bigint();
    const [redisBefore, callsBefore, podBefore] = await Promise.all([redisCpuUs(this.redis), scriptCalls(this.redis), podCpuUs(this.podUrl)]);
    const run = await this.publisher.request<RunResult>(
      'run',
      { runs: CONFIG.runs, rate: CONFIG.tokensPerSecond, windowMs: this.windows[mode], seconds },
      (seconds + 60) * 1000,
    );
    const stats = await this.awaitDelivery(run.tokens, run.replies, measured);
    const [redisAfter, callsAfter, podAfter] = await Promise.all([redisCpuUs(this.redis), scriptCalls(this.redis), podCpuUs(this.podUrl)]);
    const wallUs = Number((process.hrtime.bigint() - wallBefore) / 1000n);
    const publishUs = run.endUs - run.startUs;
    log(
      `  ${measured ? '' : 'warm-up '}${mode}: ${fmt(run.tokens / (publishUs / 1e6), 0)} tokens/s, ${fmt(run.events / (publishUs / 1e6), 0)} events/s, ` +
        `Redis ${fmt((redisAfter - redisBefore) / (wallUs / 1e3), 0)} ms CPU/s, ${stats.tokens} of ${run.tokens} tokens seen` +
        (run.errors.length ? `, errors: ${run.errors.join('; ')}` : ''),
    );
    if (!measured) return;
    const t = this.totals[mode];
    t.tokens += run.tokens;
    t.events += run.events;
    t.deltaEvents += run.deltaEvents;
    t.replies += run.replies;
    t.publishUs += publishUs;
    t.wallUs += wallUs;
    t.redisCpuUs += redisAfter - redisBefore;
    t.scriptCalls += callsAfter - callsBefore;
    t.podCpuUs += podAfter - podBefore;
    t.publisherCpuUs += run.cpuUs;
    t.watcherCpuUs += cpuOf(stats.cpu) - cpuOf(reset.cpu);
    t.tokensReceived += stats.tokens;
    t.repliesChecked += stats.replies;
    t.tokenErrors += stats.tokenErrors;
    t.replyErrors += stats.replyErrors;
    t.seqErrors += stats.seqErrors;
    t.maxLagUs = Math.max(t.maxLagUs, run.maxLagUs);
    t.drainUs = Math.max(t.drainUs, stats.lastUs - run.endUs);
    t.samples.push(stats.samples ?? new Float64Array());
    t.errors.push(...run.errors);
  }
}

function emptyTotals(): Totals {
  return {
    tokens: 0,
    events: 0,
    deltaEvents: 0,
    replies: 0,
    publishUs: 0,
    wallUs: 0,
    redisCpuUs: 0,
    scriptCalls: 0,
    podCpuUs: 0,
    publisherCpuUs: 0,
    watcherCpuUs: 0,
    tokensReceived: 0,
    repliesChecked: 0,
    tokenErrors: 0,
    replyErrors: 0,
    seqErrors: 0,
    maxLagUs: 0,
    drainUs: 0,
    samples: [],
    errors: [],
  };
}

/** The figures of one mode, from its totals. */
function figures(t: Totals): Record<string, number> {
  const latencies = new Float64Array(t.samples.reduce((sum, s) => sum + s.length, 0));
  let offset = 0;
  for (const s of t.samples) {
    latencies.set(s, offset);
    offset += s.length;
  }
  latencies.sort();
  const perSecond = (value: number) => value / (t.publishUs / 1e6);
  const msPerSecond = (cpuUs: number) => cpuUs / (t.wallUs / 1e3);
  return {
    tokensPerSec: perSecond(t.tokens),
    eventsPerSec: perSecond(t.events),
    deltasPerSec: perSecond(t.deltaEvents),
    tokensPerDelta: t.tokens / t.deltaEvents,
    scriptCallsPerSec: perSecond(t.scriptCalls),
    redisMsPerSec: msPerSecond(t.redisCpuUs),
    redisUsPerToken: t.redisCpuUs / t.tokens,
    redisUsPerEvent: t.redisCpuUs / t.events,
    podMsPerSec: msPerSecond(t.podCpuUs),
    publisherMsPerSec: msPerSecond(t.publisherCpuUs),
    watcherMsPerSec: msPerSecond(t.watcherCpuUs),
    p50: percentile(latencies, 50) / 1000,
    p90: percentile(latencies, 90) / 1000,
    p99: percentile(latencies, 99) / 1000,
    max: (latencies.length ? latencies[latencies.length - 1] : Number.NaN) / 1000,
    maxLagMs: t.maxLagUs / 1000,
    drainMs: t.drainUs / 1000,
    lost: t.tokens - t.tokensReceived,
    tokenErrors: t.tokenErrors,
    replyErrors: t.replyErrors + (t.replies - t.repliesChecked),
    seqErrors: t.seqErrors,
  };
}

const ROWS: Array<{ key: string; label: string; digits: number }> = [
  { key: 'tokensPerSec', label: 'Tokens produced per s', digits: 0 },
  { key: 'eventsPerSec', label: '**Redis events per s** (stream events published: deltas, run_started, usage, done)', digits: 0 },
  { key: 'deltasPerSec', label: '`message` deltas per s', digits: 0 },
  { key: 'tokensPerDelta', label: 'Tokens per delta', digits: 2 },
  { key: 'scriptCallsPerSec', label: 'Script calls per s (EVALSHA, all callers)', digits: 0 },
  { key: 'redisMsPerSec', label: '**Redis CPU per second**, ms (1,000 = one core)', digits: 0 },
  { key: 'redisUsPerEvent', label: 'Redis CPU-µs per event', digits: 1 },
  { key: 'redisUsPerToken', label: 'Redis CPU-µs per token', digits: 2 },
  { key: 'podMsPerSec', label: 'Gateway pod CPU per second, ms', digits: 0 },
  { key: 'publisherMsPerSec', label: 'Worker (runs + publisher) CPU per second, ms', digits: 0 },
  { key: 'watcherMsPerSec', label: 'Watching clients CPU per second, ms', digits: 0 },
  { key: 'p50', label: '**Token produced → on the client, p50**, ms', digits: 2 },
  { key: 'p90', label: 'same, p90, ms', digits: 2 },
  { key: 'p99', label: '**same, p99**, ms', digits: 2 },
  { key: 'max', label: 'same, max, ms', digits: 1 },
  { key: 'maxLagMs', label: 'Worst token production lag (the ticker behind its clock), ms', digits: 1 },
  { key: 'drainMs', label: 'Last delivery after the last token, ms (worst half)', digits: 0 },
  { key: 'lost', label: 'Tokens not delivered', digits: 0 },
  { key: 'tokenErrors', label: 'Tokens out of order, repeated or cut', digits: 0 },
  { key: 'replyErrors', label: 'Replies whose token count did not match `usage`, or missing', digits: 0 },
  { key: 'seqErrors', label: 'Seq gaps seen by clients', digits: 0 },
];

function table(coalesced: Record<string, number>, perToken: Record<string, number>, windowMs: number): { text: string; markdown: string } {
  const header = ['Metric', `Coalesced (${windowMs} ms)`, 'Per token', 'Coalesced / per token'];
  const lines = ROWS.map((row) => [
    row.label,
    fmt(coalesced[row.key], row.digits),
    fmt(perToken[row.key], row.digits),
    perToken[row.key] ? fmt(coalesced[row.key] / perToken[row.key], 2) : '—',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const pad = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ');
  return {
    text: [pad(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...lines.map(pad)].join('\n'),
    markdown: [`| ${header.join(' | ')} |`, '|---|---:|---:|---:|', ...lines.map((l) => `| ${l.join(' | ')} |`)].join('\n'),
  };
}

/** The report's reading of the figures, worded by what they show. */
function reading(c: Record<string, number>, p: Record<string, number>, windowMs: number): string[] {
  const events = p.eventsPerSec / c.eventsPerSec;
  const cpu = p.redisMsPerSec / c.redisMsPerSec;
  const behind = (f: Record<string, number>) => f.drainMs > 250 || f.lost > 0;
  return [
    `- Redis takes ${fmt(events, 1)}× fewer events coalesced (${fmt(c.eventsPerSec, 0)} vs ${fmt(p.eventsPerSec, 0)} per s; ${fmt(c.tokensPerDelta, 1)} tokens per delta) and spends ${fmt(cpu, 1)}× less CPU on them (${fmt(c.redisMsPerSec, 0)} vs ${fmt(p.redisMsPerSec, 0)} ms per second). ` +
      (cpu < events * 0.8
        ? `CPU falls less than the event count: StreamPublisher already shares one script call among the events queued for many streams, so per token the per-call costs were already spread, and an event costs more when fewer share a call (${fmt(c.redisUsPerEvent, 1)} vs ${fmt(p.redisUsPerEvent, 1)} µs per event).`
        : `Per event Redis spent ${fmt(c.redisUsPerEvent, 1)} vs ${fmt(p.redisUsPerEvent, 1)} µs.`),
    `- A token reached its client in ${fmt(c.p50, 1)} ms at the median coalesced, ${fmt(p.p50, 1)} ms per token (p99 ${fmt(c.p99, 1)} vs ${fmt(p.p99, 1)} ms). ` +
      `Coalescing holds a token up to one window (${windowMs} ms; about half of it on average: a delta's first token waits the whole window, its last hardly at all). ` +
      (behind(p) && !behind(c)
        ? `Per token, the machine did not keep up (deliveries ended ${fmt(p.drainMs, 0)} ms after the last token${p.lost > 0 ? `, ${fmt(p.lost, 0)} tokens never arrived` : ''}): its latency measures a backlog growing over the run.`
        : c.p99 < p.p99
          ? 'Per token, every event costs the worker, Redis, the pod and the clients about what a whole delta costs, and on this machine they all share the same cores: the per-token path pays in queueing what it saves in waiting.'
          : 'Per token, nothing waits for a window, and the machine had the CPU to carry every token as an event.'),
  ];
}

function reportFile(dir: string, date: string): string {
  for (let n = 1; ; n++) {
    const file = join(dir, `coalescing-${date}${n === 1 ? '' : `-${n}`}.md`);
    if (!existsSync(file)) return file;
  }
}

async function main(): Promise<void> {
  setTimeout(() => {
    console.error(`bench: over the ${CONFIG.deadlineMs / 1000} s deadline, stopping`);
    void shutdown(1);
  }, CONFIG.deadlineMs).unref();
  if (!existsSync(join(__dirname, '..', 'dist', 'apps', 'gateway', 'main.js'))) throw new Error('dist/apps/gateway/main.js is missing: npm run build');
  if (!RedisServerProcess.isAvailable()) throw new Error('redis-server is not on PATH');
  const loadStart = loadavg();
  log(`config: ${JSON.stringify(CONFIG)}; load average ${loadStart.map((l) => l.toFixed(2)).join(' / ')}`);

  redisServer = await RedisServerProcess.start({ persistent: false });
  const redis = new Redis(redisServer.url);
  const redisVersion = /^redis_version:(\S+)/m.exec(await redis.info('server'))?.[1] ?? 'unknown';
  gateway = await startGateway({ redisUrl: redisServer.url }, 'bench-gw-1');
  const watchers = HelperProcess.fork('watchers', join(__dirname, 'token-watchers.ts'), {}, ['--expose-gc']);
  const publisher = HelperProcess.fork('token-runs', join(__dirname, 'token-runs.ts'), { REDIS_URL: redisServer.url });
  helpers.push(watchers, publisher);
  const [ready] = await Promise.all([publisher.started(), watchers.started()]);
  const windows: Record<Mode, number> = { coalesced: Number(ready.defaultWindowMs), perToken: 0 };
  log(`redis ${redisVersion}; gateway pid ${gateway.pid}; coalescing window ${windows.coalesced} ms (the worker's default)`);

  const streams = Array.from({ length: CONFIG.runs }, (_, i) => `bot:tokens-${i}`);
  const token = await signToken({ sub: 'bench', scope: ['admin'], expiresInSeconds: 3600 });
  await watchers.request('connect', { url: gateway.url, token, streams }, 120_000);
  log(`${CONFIG.runs} sockets subscribed, one per run's bot stream`);

  const bench = new Bench(redis, gateway.url, publisher, watchers, windows);
  log('warm-up');
  for (const mode of ['coalesced', 'perToken'] as const) await bench.stretch(mode, CONFIG.warmUpSeconds, false);
  log(`measuring: ${CONFIG.runs} runs × ${CONFIG.tokensPerSecond} tokens/s, ${CONFIG.seconds} s per mode in ABBA halves`);
  for (const mode of ['coalesced', 'perToken', 'perToken', 'coalesced'] as const) await bench.stretch(mode, CONFIG.seconds / 2, true);

  const c = figures(bench.totals.coalesced);
  const p = figures(bench.totals.perToken);
  const { text, markdown } = table(c, p, windows.coalesced);
  console.log(`\n${text}\n`);
  const errors = [...bench.totals.coalesced.errors, ...bench.totals.perToken.errors];
  for (const error of errors) console.log(`publish error: ${error}`);

  const date = execFileSync('date', ['+%F'], { encoding: 'utf8' }).trim();
  const dir = join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = reportFile(dir, date);
  const offered = CONFIG.runs * CONFIG.tokensPerSecond;
  writeFileSync(
    file,
    [
      `# Token coalescing: coalesced vs per token — ${date}`,
      '',
      'Produced by `npm run bench:coalescing` (bench/coalescing.ts). Both modes ran side by side, interleaved, in one run on one machine.',
      '',
      '## Setup',
      '',
      `- Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), loopback only; load average at start ${loadStart.map((l) => l.toFixed(2)).join(' / ')}. Every process below shares those cores.`,
      `- ${CONFIG.runs} agent runs at once, each on its own bot stream, each streaming ${CONFIG.tokensPerSecond} tokens/s (${offered.toLocaleString('en-US')} tokens/s in all); replies of 200–400 tokens, each opened by \`run_started\` and closed by \`usage\` and \`done\`, the next run starting at once (bench/token-runs.ts, one Node process).`,
      `- Publish path: one \`DeltaCoalescer\` per run (apps/worker/src/ops/delta-coalescer.ts) → one \`StreamPublisher\` with the worker's default configuration → a private redis-server ${redisVersion} (no persistence). **Coalesced**: the worker's default window, ${windows.coalesced} ms (\`MESSAGE_COALESCE_MS\`); **per token**: window 0, every token its own \`message\` delta.`,
      `- Fan-out: one gateway pod from the build (\`dist/apps/gateway/main.js\`, TRANSPORTS=websocket, LOG_LEVEL=warn); one Socket.IO client socket per bot stream, subscribed with the \`subscribe\` command, all ${CONFIG.runs} in one client process (bench/token-watchers.ts).`,
      `- Latency of a token: from its due time on the provider clock (token i of a reply is due at the reply's start + i/${CONFIG.tokensPerSecond} s; a late ticker counts against the path) to the client's \`event\` handler for the delta that carries it; CLOCK_MONOTONIC shared by the processes; every token is a sample.`,
      `- ${CONFIG.seconds} s per mode, as four ${CONFIG.seconds / 2} s halves in ABBA order (coalesced, per token, per token, coalesced) after a ${CONFIG.warmUpSeconds} s warm-up of each; figures merge a mode's halves. Redis CPU from \`INFO cpu\` and script calls from \`INFO commandstats\`, the pod's from its \`/metrics\`, the worker's and the clients' from \`process.cpuUsage()\`; "per second" divides by the wall time of the halves (publishing and delivery).`,
      `- Exactness is checked on every reply: each token once, in order, never cut across deltas, and as many as the run's \`usage\` says; seqs gapless per socket.`,
      '',
      '## Results',
      '',
      markdown,
      '',
      ...(errors.length ? ['**Publish errors during the run:**', '', ...errors.map((e) => `- ${e}`), ''] : []),
      '## Reading',
      '',
      ...reading(c, p, windows.coalesced),
      `- The other processes: the gateway pod spent ${fmt(c.podMsPerSec, 0)} vs ${fmt(p.podMsPerSec, 0)} ms CPU per second, the worker ${fmt(c.publisherMsPerSec, 0)} vs ${fmt(p.publisherMsPerSec, 0)}, the clients ${fmt(c.watcherMsPerSec, 0)} vs ${fmt(p.watcherMsPerSec, 0)}.`,
      `- Load average at the end ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' / ')}; total run time ${((Date.now() - startedAt) / 1000).toFixed(0)} s. Compare the columns of this run, not runs with each other.`,
      '',
    ].join('\n'),
  );
  log(`report written to ${file}`);
  await redis.quit();
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  })
  .finally(() => shutdown(Number(process.exitCode ?? 0)));
