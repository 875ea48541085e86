import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import Redis from 'ioredis';
import { RedisServerProcess, waitFor } from '@app/runtime';
import { type AppProcess, startGateway } from '../test/support/processes';
import { signToken } from '../test/support/tokens';
import { CONTENT_BYTES, type CpuSample, HelperProcess, percentile, redisCpuUs, rssKb, sleep } from './common';
import { plainScript } from './plain-script';

/**
 * `npm run bench`: the full path (StreamPublisher → Lua → two gateway pods → sockets) next
 * to a raw Socket.IO broadcast through the sharded Redis adapter (two plain socket.io
 * servers), in one run on loopback, so machine noise hits both alike. See the report it
 * writes to bench/results/<date>.md for what is measured and how.
 */

const ROOT = join(__dirname, '..');
const GATEWAY_MAIN = join(ROOT, 'dist', 'apps', 'gateway', 'main.js');

function intEnv(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

const PHASES = ['idle', 'saturation', 'latency'] as const;
type Phase = (typeof PHASES)[number];

/** `BENCH_PHASES=idle` (comma-separated) runs only those phases; all of them by default. */
function phasesEnv(): Phase[] {
  const raw = process.env.BENCH_PHASES;
  if (!raw) return [...PHASES];
  const picked = raw.split(',').map((p) => p.trim());
  const unknown = picked.filter((p) => !(PHASES as readonly string[]).includes(p));
  if (unknown.length > 0 || picked.length === 0) throw new Error(`BENCH_PHASES: ${raw}; choose from ${PHASES.join(', ')}`);
  return PHASES.filter((p) => picked.includes(p));
}

const CONFIG = {
  /** Events per saturation run. */
  events: intEnv('BENCH_EVENTS', 10_000),
  /** Client sockets per path for throughput and latency, split over the two pods. */
  sockets: intEnv('BENCH_SOCKETS', 100),
  /** Idle sockets per path for the memory measurement, split over the two pods. */
  idleSockets: intEnv('BENCH_IDLE_SOCKETS', 5_000),
  /** Idle-socket runs per path, each on freshly started pods (ABBA order); medians are reported. */
  idleRounds: intEnv('BENCH_IDLE_ROUNDS', 3),
  phases: phasesEnv(),
  /** Offered loads for the latency runs, events/s (× sockets = deliveries/s). */
  rates: [50, 200, 1_000],
  latencySeconds: intEnv('BENCH_LATENCY_SECONDS', 4),
  /** Saturation runs per path (ABBA order); the best one is reported. */
  rounds: intEnv('BENCH_ROUNDS', 2),
  /** Publisher chunk at saturation: sends in flight before it waits for Redis. */
  chunk: 256,
  /** The whole run is abandoned (and cleaned up) past this. */
  deadlineMs: intEnv('BENCH_DEADLINE_MS', 300_000),
};

const STREAM = 'bot:bench';
const IDLE_STREAM = 'bot:bench-idle';

// ---------------------------------------------------------------------------------------
// Processes. Everything started here is recorded, so a failure anywhere kills it all.

const children = new Set<ChildProcess>();
const apps = new Set<AppProcess>();
let redisServer: RedisServerProcess | null = null;

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
  for (const app of apps) void app.kill();
  apps.clear();
  // dispose() sends SIGKILL before its first await, so this works even in an 'exit' handler.
  if (redisServer) void redisServer.dispose();
  redisServer = null;
}

/** Kills everything and waits for Redis to be gone (an un-awaited kill leaves a zombie). */
async function shutdown(code: number): Promise<never> {
  const redis = redisServer;
  redisServer = null;
  killAll();
  await redis?.dispose().catch(() => undefined);
  process.exit(code);
}

process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping bench processes`);
    void shutdown(130);
  });
}

function fork(name: string, script: string, env: Record<string, string>, nodeFlags: string[] = []): HelperProcess {
  const helper = HelperProcess.fork(name, join(__dirname, script), env, nodeFlags);
  children.add(helper.child);
  return helper;
}

/** One server process of either path, as the measurements see it. */
interface Pod {
  name: string;
  url: string;
  pid: number;
  /** User + system CPU time of the process so far, µs. */
  cpuUs(): Promise<number>;
  /** Kills the process and waits for it to be gone. */
  stop(): Promise<void>;
}

/** A gateway pod from the build, started as the end-to-end tests start one. */
async function startGatewayPod(redisUrl: string, serverId: string): Promise<Pod> {
  const app = await startGateway({ redisUrl }, serverId);
  apps.add(app);
  const url = app.url;
  return {
    name: serverId,
    url,
    pid: app.pid ?? -1,
    stop: async () => {
      await app.kill();
      apps.delete(app);
    },
    cpuUs: async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const metric = (name: string) => {
        const match = new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm').exec(text);
        if (!match) throw new Error(`${name} missing from ${url}/metrics`);
        return Number(match[1]);
      };
      return Math.round((metric('rtgw_process_cpu_user_seconds_total') + metric('rtgw_process_cpu_system_seconds_total')) * 1e6);
    },
  };
}

async function startBaselinePod(redisUrl: string, name: string): Promise<Pod> {
  const helper = fork(name, relative(__dirname, plainScript(join(__dirname, 'baseline-server.ts'))), { REDIS_URL: redisUrl });
  const { port } = await helper.started();
  return {
    name,
    url: `http://127.0.0.1:${Number(port)}`,
    pid: helper.pid,
    stop: async () => {
      helper.kill();
      await helper.exited;
      children.delete(helper.child);
    },
    cpuUs: async () => {
      const cpu = await helper.request<CpuSample>('cpu');
      return cpu.userUs + cpu.systemUs;
    },
  };
}

// ---------------------------------------------------------------------------------------
// The two paths under test.

interface Side {
  key: 'full' | 'baseline';
  label: string;
  kind: 'gateway' | 'baseline';
  /** The pods of the fan-out phases (saturation, latency). */
  pods: Pod[];
  /** Starts a fresh pair of pods (the idle-socket runs each get their own). */
  startPods(tag: string): Promise<Pod[]>;
  publisher: HelperProcess;
  target: string;
  idleTarget: string;
}

interface ClientStats {
  received: number;
  firstUs: number;
  lastUs: number;
  orderErrors: number;
  cpu: CpuSample;
  samples?: Float64Array;
  frameBytes?: number;
}

interface PublishRun {
  sent: number;
  startUs: number;
  endUs: number;
  cpuUs: number;
}

interface IdleRun {
  rssBeforeMb: number;
  rssAfterMb: number;
  rssPerSocketKb: number;
  rssMarginalKb: number;
  connectPerSec: number;
}

const cpuOf = (sample: CpuSample) => sample.userUs + sample.systemUs;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

class Bench {
  private token = '';
  readonly results = {
    full: {} as Record<string, number>,
    baseline: {} as Record<string, number>,
  };
  readonly notes: string[] = [];
  readonly rounds = { full: [] as number[], baseline: [] as number[] };
  readonly idleRuns = { full: [] as IdleRun[], baseline: [] as IdleRun[] };

  constructor(
    private readonly redis: Redis,
    private readonly clients: HelperProcess[],
    readonly sides: Side[],
  ) {}

  async init(): Promise<void> {
    this.token = await signToken({ sub: 'bench', scope: ['admin'], expiresInSeconds: 3600 });
  }

  /** Connects `total` sockets of a side, half on each pod; client process i talks to pod i. */
  private async connect(side: Side, group: string, total: number, target: string, pods = side.pods): Promise<number> {
    const started = Date.now();
    const perPod = Math.ceil(total / pods.length);
    await Promise.all(
      pods.map((pod, i) =>
        this.clients[i % this.clients.length].request(
          'connect',
          { group, kind: side.kind, url: pod.url, count: Math.min(perPod, total - i * perPod), token: this.token, target, concurrency: 100 },
          120_000,
        ),
      ),
    );
    return Date.now() - started;
  }

  private async close(group: string): Promise<void> {
    await Promise.all(this.clients.map((client) => client.request('close', { group })));
  }

  private async podsCpu(side: Side): Promise<number[]> {
    return Promise.all(side.pods.map((pod) => pod.cpuUs()));
  }

  private async reset(sample: boolean): Promise<number> {
    const replies = await Promise.all(this.clients.map((client) => client.request<{ cpu: CpuSample }>('reset', { sample })));
    return replies.reduce((sum, r) => sum + cpuOf(r.cpu), 0);
  }

  /** Polls the clients until `expected` deliveries arrived, or none arrived for 5 s. */
  private async awaitDeliveries(expected: number, samples = false): Promise<ClientStats[]> {
    const hardStop = Date.now() + 120_000;
    let last = -1;
    let lastProgress = Date.now();
    for (;;) {
      const stats = await Promise.all(this.clients.map((client) => client.request<ClientStats>('stats', { samples: false })));
      const total = stats.reduce((sum, s) => sum + s.received, 0);
      if (total !== last) {
        last = total;
        lastProgress = Date.now();
      }
      if (total >= expected || Date.now() - lastProgress > 5_000 || Date.now() > hardStop) {
        return samples ? Promise.all(this.clients.map((client) => client.request<ClientStats>('stats', { samples: true }))) : stats;
      }
      await sleep(100);
    }
  }

  /** One publish run of `count` events at `rate` (0 = as fast as possible) and what it cost. */
  private async drive(side: Side, count: number, rate: number, sample: boolean) {
    const clientCpuBefore = await this.reset(sample);
    const [podCpuBefore, redisBefore] = await Promise.all([this.podsCpu(side), redisCpuUs(this.redis)]);
    const run = await side.publisher.request<PublishRun>('run', { target: side.target, count, rate, chunk: CONFIG.chunk }, 180_000);
    const expected = count * CONFIG.sockets;
    const stats = await this.awaitDeliveries(expected, sample);
    const [podCpuAfter, redisAfter] = await Promise.all([this.podsCpu(side), redisCpuUs(this.redis)]);
    const received = stats.reduce((sum, s) => sum + s.received, 0);
    const lastUs = Math.max(...stats.map((s) => s.lastUs));
    const elapsedUs = Math.max(1, lastUs - run.startUs);
    const podCpu = podCpuAfter.reduce((sum, after, i) => sum + after - podCpuBefore[i], 0);
    const clientCpu = stats.reduce((sum, s) => sum + cpuOf(s.cpu), 0) - clientCpuBefore;
    const orderErrors = stats.reduce((sum, s) => sum + s.orderErrors, 0);
    if (received < expected) this.notes.push(`${side.label}: ${count} events at ${rate || 'max'}/s delivered ${received} of ${expected} expected.`);
    if (orderErrors > 0) this.notes.push(`${side.label}: ${orderErrors} out-of-order or missing seqs seen by clients.`);
    let latencies: Float64Array | null = null;
    if (sample) {
      latencies = new Float64Array(stats.reduce((sum, s) => sum + (s.samples?.length ?? 0), 0));
      let offset = 0;
      for (const s of stats) {
        if (!s.samples) continue;
        latencies.set(s.samples, offset);
        offset += s.samples.length;
      }
      latencies.sort();
    }
    return {
      run,
      lastUs,
      received,
      expected,
      elapsedUs,
      deliveriesPerSec: received / (elapsedUs / 1e6),
      eventsPerSec: run.sent / ((run.endUs - run.startUs) / 1e6),
      podCpuPerDelivery: podCpu / Math.max(1, received),
      podCores: podCpu / elapsedUs,
      redisCpuPerEvent: (redisAfter - redisBefore) / run.sent,
      redisCores: (redisAfter - redisBefore) / elapsedUs,
      publisherCpuPerEvent: run.cpuUs / run.sent,
      clientCores: clientCpu / elapsedUs,
      clientCpuPerDelivery: clientCpu / Math.max(1, received),
      frameBytes: stats.find((s) => s.frameBytes)?.frameBytes ?? 0,
      latencies,
    };
  }

  /**
   * Idle sockets, in `CONFIG.idleRounds` runs per path on fresh pods each (ABBA order, so
   * neither path always goes first); the medians of the runs are the results.
   */
  async idleMemory(): Promise<void> {
    for (let round = 0; round < CONFIG.idleRounds; round++) {
      const order = round % 2 === 0 ? this.sides : [...this.sides].reverse();
      for (const side of order) {
        const pods = await side.startPods(`idle${round + 1}`);
        try {
          this.idleRuns[side.key].push(await this.idleRun(side, pods, round));
        } finally {
          await Promise.all(pods.map((pod) => pod.stop()));
        }
      }
    }
    for (const side of this.sides) {
      const runs = this.idleRuns[side.key];
      for (const key of ['rssBeforeMb', 'rssAfterMb', 'rssPerSocketKb', 'rssMarginalKb', 'connectPerSec'] as const) {
        this.results[side.key][key] = median(runs.map((run) => run[key]));
      }
    }
  }

  private async idleRun(side: Side, pods: Pod[], round: number): Promise<IdleRun> {
    // First connections compile code and grow pools; keep that out of the per-socket figure.
    await this.connect(side, `${side.key}-warm`, 100, side.idleTarget, pods);
    await this.close(`${side.key}-warm`);
    await sleep(1_500);
    const total = (kb: number[]) => kb.reduce((a, b) => a + b, 0);
    const before = pods.map((pod) => rssKb(pod.pid));
    // A stop on the way gives a second, marginal figure: the first sockets can land in heap
    // V8 had already reserved (more of it in the ts-node baseline process), the later ones cannot.
    const first = Math.floor(CONFIG.idleSockets / 5);
    const firstMs = await this.connect(side, `${side.key}-idle`, first, side.idleTarget, pods);
    await sleep(1_500);
    const mid = pods.map((pod) => rssKb(pod.pid));
    const restMs = await this.connect(side, `${side.key}-idle`, CONFIG.idleSockets - first, side.idleTarget, pods);
    await sleep(3_000);
    const after = pods.map((pod) => rssKb(pod.pid));
    const run: IdleRun = {
      rssBeforeMb: total(before) / 1024,
      rssAfterMb: total(after) / 1024,
      rssPerSocketKb: (total(after) - total(before)) / CONFIG.idleSockets,
      rssMarginalKb: (total(after) - total(mid)) / (CONFIG.idleSockets - first),
      connectPerSec: CONFIG.idleSockets / ((firstMs + restMs) / 1000),
    };
    log(
      `  run ${round + 1} ${side.label}: ${CONFIG.idleSockets} idle sockets in ${((firstMs + restMs) / 1000).toFixed(1)} s (${fmt(run.connectPerSec, 0)}/s); ` +
        `RSS ${fmt(run.rssBeforeMb, 0)} → ${fmt(total(mid) / 1024, 0)} (at ${first}) → ${fmt(run.rssAfterMb, 0)} MB; ` +
        `${fmt(run.rssPerSocketKb, 1)} KB/socket overall, ${fmt(run.rssMarginalKb, 1)} KB/socket from ${first} to ${CONFIG.idleSockets}`,
    );
    await this.close(`${side.key}-idle`);
    return run;
  }

  async connectLoad(): Promise<void> {
    for (const side of this.sides) {
      const ms = await this.connect(side, `${side.key}-load`, CONFIG.sockets, side.target);
      log(`  ${side.label}: ${CONFIG.sockets} sockets joined ${side.target} in ${ms} ms`);
    }
    await sleep(500);
  }

  async warmUp(): Promise<void> {
    for (const side of this.sides) {
      const result = await this.drive(side, 1_000, 0, false);
      if (result.received < result.expected)
        throw new Error(`${side.label}: warm-up delivered ${result.received} of ${result.expected}; the sockets are not all joined`);
      log(`  ${side.label}: warm-up ok (${result.frameBytes} bytes per frame)`);
      this.results[side.key].frameBytes = result.frameBytes;
    }
  }

  async saturation(): Promise<void> {
    for (let round = 0; round < CONFIG.rounds; round++) {
      // ABBA: neither path always goes first (the box warms up, other jobs come and go).
      const order = round % 2 === 0 ? this.sides : [...this.sides].reverse();
      for (const side of order) {
        const res = await this.drive(side, CONFIG.events, 0, false);
        const r = this.results[side.key];
        this.rounds[side.key].push(res.deliveriesPerSec);
        log(
          `  round ${round + 1} ${side.label}: ${fmt(res.deliveriesPerSec, 0)} deliveries/s (${fmt(res.eventsPerSec, 0)} events/s published), ` +
            `server ${fmt(res.podCpuPerDelivery, 2)} CPU-µs/delivery, pods ${fmt(res.podCores, 2)} cores, clients ${fmt(res.clientCores, 2)} cores`,
        );
        if (!(r.deliveriesPerSec >= res.deliveriesPerSec)) {
          r.deliveriesPerSec = res.deliveriesPerSec;
          r.publishEventsPerSec = res.eventsPerSec;
          r.podCpuPerDeliverySat = res.podCpuPerDelivery;
          r.podCoresSat = res.podCores;
          r.redisCpuPerEventSat = res.redisCpuPerEvent;
          r.redisCoresSat = res.redisCores;
          r.publisherCpuPerEventSat = res.publisherCpuPerEvent;
          r.clientCoresSat = res.clientCores;
          r.clientCpuPerDeliverySat = res.clientCpuPerDelivery;
          // Every process shares the same cores, so this — not the pods' share alone — is
          // what deliveries/s at saturation follows on this machine.
          r.totalCpuPerDeliverySat =
            res.podCpuPerDelivery + res.clientCpuPerDelivery + ((res.publisherCpuPerEvent + res.redisCpuPerEvent) * res.run.sent) / Math.max(1, res.received);
          r.deliveredSat = res.received;
          r.expectedSat = res.expected;
        }
      }
    }
  }

  /**
   * Each load runs as four short halves in ABBA order and the halves of a path are merged:
   * a burst of other work on the machine then lands on both paths rather than on one.
   */
  async latency(): Promise<void> {
    for (const rate of CONFIG.rates) {
      const merged = new Map<Side, { samples: Float64Array[]; podCpu: number; received: number; drainMs: number; overloaded: boolean }>();
      for (const side of [...this.sides, ...[...this.sides].reverse()]) {
        const res = await this.drive(side, Math.round((rate * CONFIG.latencySeconds) / 2), rate, true);
        // Deliveries still arriving long after the last send: the path did not keep up and
        // the latency figures measure the backlog, not the path.
        const drainMs = (Math.max(res.lastUs, res.run.endUs) - res.run.endUs) / 1000;
        const m = merged.get(side) ?? { samples: [], podCpu: 0, received: 0, drainMs: 0, overloaded: false };
        m.samples.push(res.latencies ?? new Float64Array());
        m.podCpu += res.podCpuPerDelivery * res.received;
        m.received += res.received;
        m.drainMs = Math.max(m.drainMs, drainMs);
        m.overloaded ||= drainMs > 250 || res.received < res.expected;
        merged.set(side, m);
      }
      for (const side of this.sides) {
        const m = merged.get(side);
        if (!m) continue;
        const lat = new Float64Array(m.samples.reduce((sum, a) => sum + a.length, 0));
        let offset = 0;
        for (const a of m.samples) {
          lat.set(a, offset);
          offset += a.length;
        }
        lat.sort();
        const r = this.results[side.key];
        r[`p50_${rate}`] = percentile(lat, 50) / 1000;
        r[`p99_${rate}`] = percentile(lat, 99) / 1000;
        r[`max_${rate}`] = (lat.length ? lat[lat.length - 1] : Number.NaN) / 1000;
        r[`podCpuPerDelivery_${rate}`] = m.podCpu / Math.max(1, m.received);
        r[`overloaded_${rate}`] = m.overloaded ? 1 : 0;
        log(
          `  ${rate} ev/s ${side.label}: p50 ${fmt(r[`p50_${rate}`], 2)} ms, p99 ${fmt(r[`p99_${rate}`], 2)} ms, max ${fmt(r[`max_${rate}`], 1)} ms ` +
            `(${lat.length} samples), server ${fmt(r[`podCpuPerDelivery_${rate}`], 2)} CPU-µs/delivery, last delivery up to ${fmt(m.drainMs, 0)} ms after the last send` +
            (m.overloaded ? ' — OVERLOADED' : ''),
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Output.

const startedAt = Date.now();
function log(line: string): void {
  console.log(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(5)} s] ${line}`);
}

function fmt(value: number | undefined, digits: number): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

interface Row {
  metric: string;
  key: string;
  digits: number;
  /** Latency rows of a load the path did not keep up with get a mark. */
  rate?: number;
}

function rows(): Row[] {
  const list: Row[] = [
    { metric: `Deliveries/s at saturation (${CONFIG.events.toLocaleString('en-US')} events × ${CONFIG.sockets} sockets)`, key: 'deliveriesPerSec', digits: 0 },
    { metric: 'Server CPU-µs per delivery at saturation (both pods)', key: 'podCpuPerDeliverySat', digits: 2 },
  ];
  for (const rate of CONFIG.rates) {
    list.push(
      {
        metric: `Latency p50 at ${rate} events/s (${(rate * CONFIG.sockets).toLocaleString('en-US')} deliveries/s offered), ms`,
        key: `p50_${rate}`,
        digits: 2,
        rate,
      },
      { metric: `Latency p99 at ${rate} events/s, ms`, key: `p99_${rate}`, digits: 2, rate },
    );
  }
  list.push(
    ...CONFIG.rates.map((rate) => ({ metric: `Server CPU-µs per delivery at ${rate} events/s`, key: `podCpuPerDelivery_${rate}`, digits: 2 })),
    { metric: `RSS per idle socket, 0 → ${CONFIG.idleSockets.toLocaleString('en-US')} sockets, KB`, key: 'rssPerSocketKb', digits: 1 },
    {
      metric: `RSS per idle socket, ${(CONFIG.idleSockets / 5).toLocaleString('en-US')} → ${CONFIG.idleSockets.toLocaleString('en-US')} sockets, KB`,
      key: 'rssMarginalKb',
      digits: 1,
    },
    { metric: 'Redis CPU-µs per published event (saturation)', key: 'redisCpuPerEventSat', digits: 1 },
    { metric: 'Publisher CPU-µs per event (saturation)', key: 'publisherCpuPerEventSat', digits: 1 },
    { metric: 'Events/s taken by Redis at saturation', key: 'publishEventsPerSec', digits: 0 },
    { metric: 'Cores busy at saturation: server pods', key: 'podCoresSat', digits: 2 },
    { metric: 'Cores busy at saturation: client processes', key: 'clientCoresSat', digits: 2 },
    { metric: 'Cores busy at saturation: Redis', key: 'redisCoresSat', digits: 2 },
    { metric: 'Client CPU-µs per delivery (saturation)', key: 'clientCpuPerDeliverySat', digits: 2 },
    { metric: 'All processes CPU-µs per delivery (pods + clients + publisher + Redis, saturation)', key: 'totalCpuPerDeliverySat', digits: 2 },
    { metric: `Connect + subscribe/join rate, ${CONFIG.idleSockets.toLocaleString('en-US')} sockets, per s`, key: 'connectPerSec', digits: 0 },
    { metric: 'Bytes per `event` frame', key: 'frameBytes', digits: 0 },
  );
  return list;
}

function table(bench: Bench): { text: string; markdown: string; marked: boolean } {
  const results = bench.results;
  let marked = false;
  const cell = (side: Record<string, number>, row: Row) => {
    const over = row.rate !== undefined && side[`overloaded_${row.rate}`] === 1;
    if (over) marked = true;
    return `${fmt(side[row.key], row.digits)}${over ? ' *' : ''}`;
  };
  const measured = rows().filter((row) => results.full[row.key] !== undefined || results.baseline[row.key] !== undefined);
  const lines = measured.map((row) => [
    row.metric,
    cell(results.full, row),
    cell(results.baseline, row),
    fmt(results.full[row.key] / results.baseline[row.key], 2),
  ]);
  const header = ['Metric', 'Full path', 'Baseline', 'Full / baseline'];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const pad = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ');
  const text = [pad(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...lines.map(pad)].join('\n');
  const markdown = [`| ${header.join(' | ')} |`, '|---|---:|---:|---:|', ...lines.map((l) => `| ${l.join(' | ')} |`)].join('\n');
  return { text, markdown, marked };
}

const OVERLOAD_NOTE =
  '`*` the path did not keep up with that offered load (deliveries still arriving > 250 ms after the last send, or some missing): the figure measures a growing backlog over the run, not the path.';

function interpretation(bench: Bench): string[] {
  const f = bench.results.full;
  const b = bench.results.baseline;
  const out: string[] = [];
  const has = (phase: Phase) => CONFIG.phases.includes(phase);
  const ratio = (key: string) => f[key] / b[key];
  const list = (values: number[]) => values.map((v) => fmt(v, 0)).join(', ');
  const idleList = (runs: IdleRun[]) => runs.map((run) => `${fmt(run.rssMarginalKb, 1)} KB, ${fmt(run.connectPerSec, 0)}/s`).join('; ');
  const spread = (values: number[]) => (Math.max(...values) - Math.min(...values)) / Math.max(...values);
  const noise = Math.max(spread(bench.rounds.full), spread(bench.rounds.baseline));
  const tput = ratio('deliveriesPerSec');
  const perPod = CONFIG.sockets / 2;

  const publishSide = (side: Record<string, number>) => side.totalCpuPerDeliverySat - side.podCpuPerDeliverySat - side.clientCpuPerDeliverySat;
  const diff = f.totalCpuPerDeliverySat - b.totalCpuPerDeliverySat;
  if (has('saturation'))
    out.push(
      `**Fan-out throughput.** At saturation the full path delivered ${fmt(tput, 2)}× the baseline's deliveries per second (${fmt(f.deliveriesPerSec, 0)} vs ${fmt(b.deliveriesPerSec, 0)}; ` +
        `runs: full ${list(bench.rounds.full)}, baseline ${list(bench.rounds.baseline)}, so a path's own runs differed by up to ${fmt(noise * 100, 0)}%). ` +
        `Every process here shares ${cpus().length} cores, so deliveries/s follows the CPU that all of them spend per delivery: ${fmt(f.totalCpuPerDeliverySat, 2)} µs on the full path vs ${fmt(b.totalCpuPerDeliverySat, 2)} µs on the baseline ` +
        `(inverse ratio ${fmt(b.totalCpuPerDeliverySat / f.totalCpuPerDeliverySat, 2)}). ` +
        `Of the ${fmt(diff, 2)} µs difference, the server pods account for ${fmt(f.podCpuPerDeliverySat - b.podCpuPerDeliverySat, 2)} ` +
        `(${fmt(f.podCpuPerDeliverySat, 2)} vs ${fmt(b.podCpuPerDeliverySat, 2)}: the same Socket.IO fan-out, plus an envelope check, the ordering feed and metrics per event, shared by the event's ${perPod} deliveries in a pod), ` +
        `the client sockets ${fmt(f.clientCpuPerDeliverySat - b.clientCpuPerDeliverySat, 2)} (they decode larger frames: ${fmt(f.frameBytes, 0)} vs ${fmt(b.frameBytes, 0)} bytes, the envelope's seq, epoch, id, type and ts), ` +
        `and the publish side ${fmt(publishSide(f) - publishSide(b), 2)} (publisher and Redis, paid once per event and spread over ${CONFIG.sockets} deliveries).`,
    );

  const busy = (side: Record<string, number>) => side.podCoresSat + side.clientCoresSat + side.redisCoresSat;
  if (has('saturation'))
    out.push(
      `**What limits it here.** During saturation the server pods used ${fmt(f.podCoresSat, 2)} / ${fmt(b.podCoresSat, 2)} cores (full / baseline), the client processes ${fmt(f.clientCoresSat, 2)} / ${fmt(b.clientCoresSat, 2)}, Redis ${fmt(f.redisCoresSat, 2)} / ${fmt(b.redisCoresSat, 2)}, ` +
        `on ${cpus().length} cores shared with the publisher, the driver and any other job. ` +
        (Math.max(f.clientCoresSat / busy(f), b.clientCoresSat / busy(b)) > 0.35
          ? `The client sockets cost about as much CPU per delivery as the servers (${fmt(f.clientCpuPerDeliverySat, 1)} / ${fmt(b.clientCpuPerDeliverySat, 1)} µs to read and decode a frame): the clients are half of the bottleneck, so deliveries/s are a lower bound for what the servers could do and are best read as a ratio. Server CPU-µs per delivery does not depend on where the clients run. `
          : '') +
        (Math.max(busy(f), busy(b)) < cpus().length * 0.75
          ? 'These add up to well under the machine: other jobs were taking CPU during the run, so absolute figures are low. '
          : '') +
        `Absolute numbers from this machine are pessimistic in any case (a plain Socket.IO delivery cost ${fmt(b.podCpuPerDeliverySat, 1)} server CPU-µs here).`,
    );

  if (has('saturation'))
    out.push(
      `**The cost of sequencing is in Redis and the publisher.** The publish script (seq, history XADD and trim, SPUBLISH, EXPIREs) cost ${fmt(f.redisCpuPerEventSat, 1)} Redis CPU-µs per event against ${fmt(b.redisCpuPerEventSat, 1)} for the adapter's bare SPUBLISH (${fmt(ratio('redisCpuPerEventSat'), 1)}×), ` +
        `and ${fmt(f.publisherCpuPerEventSat, 1)} vs ${fmt(b.publisherCpuPerEventSat, 1)} publisher CPU-µs per event (two UUIDs, the script call, and every 200 events a checkpoint fold that reads them back). Pods scale out; this does not, except by spreading streams over Redis Cluster shards: ` +
        `one Redis core at this cost sequences at most ~${fmt(Math.round(1e6 / f.redisCpuPerEventSat / 100) * 100, 0)} events/s for all the streams of a shard on this machine (vs ~${fmt(Math.round(1e6 / b.redisCpuPerEventSat / 100) * 100, 0)} bare broadcasts). ` +
        `With 100 sockets per stream that is not the limit (the fan-out is); with many quiet streams of one or two sockets each, it is the first one to reach.`,
    );

  const lat = CONFIG.rates.map((rate) => {
    const over = (side: Record<string, number>) => (side[`overloaded_${rate}`] === 1 ? '*' : '');
    return `${rate}/s: p50 ${fmt(f[`p50_${rate}`], 2)}${over(f)} vs ${fmt(b[`p50_${rate}`], 2)}${over(b)} ms, p99 ${fmt(f[`p99_${rate}`], 2)}${over(f)} vs ${fmt(b[`p99_${rate}`], 2)}${over(b)} ms`;
  });
  const overloadedRates = CONFIG.rates.filter((rate) => f[`overloaded_${rate}`] || b[`overloaded_${rate}`]);
  if (has('latency'))
    out.push(
      `**Latency** (publish call → client \`event\` handler, full vs baseline): ${lat.join('; ')}. ` +
        `Per event the full path adds the Lua script in Redis and, in the pod, the envelope check and the ordering feed (both paths parse one JSON message from Redis per event and pod); both paths then write a pod's ${perPod} sockets one after the other and each client process reads its sockets one after the other, so every figure includes the fan-out order, the same on both paths. ` +
        (overloadedRates.length
          ? `At ${overloadedRates.join(' and ')} events/s (marked *) a path did not keep up on this machine during this run (${overloadedRates.map((r) => (r * CONFIG.sockets).toLocaleString('en-US')).join(' / ')} deliveries/s offered): those figures measure a backlog growing over the run, not the path. `
          : '') +
        'p99 on a shared 2-core machine moves with whatever else runs: compare the two columns of one run, not runs with each other.',
    );

  if (has('idle'))
    out.push(
      `**Idle sockets.** ${fmt(f.rssPerSocketKb, 1)} vs ${fmt(b.rssPerSocketKb, 1)} KB of RSS per idle socket over 0 → ${CONFIG.idleSockets.toLocaleString('en-US')} sockets, ` +
        `${fmt(f.rssMarginalKb, 1)} vs ${fmt(b.rssMarginalKb, 1)} KB over the last ${((CONFIG.idleSockets * 4) / 5).toLocaleString('en-US')}. ` +
        'Besides the Socket.IO socket, a gateway socket holds its auth context (shared by the sockets of one token), a slot in the pod\'s one expiry schedule, a subscription record and rate-limit state, and it lets go of what Socket.IO keeps of the handshake (docs/architecture.md, "What a connection holds"; `bench/socket-heap.ts` for the breakdown). ' +
        'The baseline servers run under ts-node, so they start with heap V8 already reserved for the compiler and their first sockets grow RSS less; the marginal figure is the fairer one. RSS moves in V8 heap-growth steps: a few KB either way is noise. ' +
        `Connect + subscribe: ${fmt(f.connectPerSec, 0)} vs ${fmt(b.connectPerSec, 0)} sockets/s (${fmt(ratio('connectPerSec'), 2)}×). On top of the baseline's work a gateway connection checks its JWT (the signature once per token and pod), is sent \`hello\`, and its \`subscribe\` is validated, takes a snapshot (the first subscriber of a pod: SSUBSCRIBE, a head read and a catch-up read; later ones share a read, or none while the stream is quiet) and joins presence (batched writes), where the baseline's join is local. ` +
        `That sets how fast a pod's sockets come back after a restart: ${CONFIG.idleSockets.toLocaleString('en-US')} sockets took ${fmt(CONFIG.idleSockets / f.connectPerSec, 1)} s on two pods here. ` +
        `Runs (RSS KB/socket from ${(CONFIG.idleSockets / 5).toLocaleString('en-US')}; connects/s): full ${idleList(bench.idleRuns.full)}; baseline ${idleList(bench.idleRuns.baseline)}.`,
    );
  return out;
}

function environment(redisVersion: string, loadStart: number[]): string[] {
  const cpuModel = cpus()[0]?.model ?? 'unknown';
  const nproc = (() => {
    try {
      return execFileSync('nproc', { encoding: 'utf8' }).trim();
    } catch {
      return String(cpus().length);
    }
  })();
  return [
    `- Machine: \`nproc\` = ${nproc} (${cpuModel}), loopback only (127.0.0.1). Load average at start ${loadStart.map((l) => l.toFixed(2)).join(' / ')}: other jobs may share the machine, which is why both paths run interleaved in one run.`,
    `- Node ${process.version}; socket.io and socket.io-client 4.8.3; @socket.io/redis-adapter 8.3.0 (\`createShardedAdapter\`, \`subscriptionMode: 'dynamic'\`); ioredis 6.0.0; redis-server ${redisVersion} (private, no persistence, one instance shared by both paths).`,
    `- **Full path:** a publisher process (\`StreamPublisher\`, default retention: 10,000 events, checkpoint every 200) → \`rtPublishV5\` Lua → SPUBLISH → 2 gateway pods (\`dist/apps/gateway/main.js\`, TRANSPORTS=websocket, LOG_LEVEL=warn) → sockets subscribed to \`${STREAM}\` with the \`subscribe\` command.`,
    "- **Baseline:** a publisher process that is a socket.io server with the sharded adapter and no sockets (`io.to(room).emit('event', payload)`) → SSUBSCRIBE per room → 2 plain socket.io servers (bench/baseline-server.ts: websocket only, no compression, same heartbeat) → sockets joined to the room. No auth, no seq, no history.",
    `- Same application payload on both paths (a ${CONTENT_BYTES}-byte string plus two ids, a counter and the send timestamp); the full path wraps it in the protocol envelope.`,
    ...(CONFIG.phases.includes('saturation') || CONFIG.phases.includes('latency')
      ? [
          `- **Throughput and latency:** ${CONFIG.sockets} client sockets per path (${CONFIG.sockets / 2} per pod) over WebSocket, held by 2 client processes (one per pod). Saturation: ${CONFIG.events.toLocaleString('en-US')} events sent as fast as the publisher can (chunks of ${CONFIG.chunk}, each awaited), ${CONFIG.rounds} runs per path in ABBA order, best run reported; deliveries/s = deliveries counted at the clients / (last delivery − first send).`,
        ]
      : []),
    ...(CONFIG.phases.includes('latency')
      ? [
          `- **Latency:** open-loop publishing at ${CONFIG.rates.join(', ')} events/s, ${CONFIG.latencySeconds} s per path and load, run as four ${CONFIG.latencySeconds / 2} s halves in ABBA order and merged per path (a burst of other work then hits both paths); send time (CLOCK_MONOTONIC, µs) in the payload, read in the client's \`event\` handler; every delivery is a sample.`,
        ]
      : []),
    ...(CONFIG.phases.includes('saturation') || CONFIG.phases.includes('latency')
      ? [
          '- **CPU:** gateway pods from `/metrics` (`rtgw_process_cpu_user_seconds_total` + `rtgw_process_cpu_system_seconds_total`); baseline servers, publishers and clients from `process.cpuUsage()` over IPC; Redis from `INFO cpu`; deltas over each run, summed over both pods.',
        ]
      : []),
    ...(CONFIG.phases.includes('idle')
      ? [
          `- **Memory and connect rate:** ${CONFIG.idleSockets.toLocaleString('en-US')} idle sockets per path (${CONFIG.idleSockets / 2} per pod) connected and subscribed/joined to a quiet stream/room (2 client processes, 100 handshakes in flight each; every gateway socket presents the same token, so after a pod's first handshake its token cache answers, and the quiet stream's snapshot is read once per pod), VmRSS of each server from /proc/<pid>/status before, at ${CONFIG.idleSockets / 5} and 3 s after the last, summed over the pods; 100 sockets are connected and closed first so one-off warm-up growth is not counted. ${CONFIG.idleRounds} runs per path, each on freshly started pods, in ABBA order; the table gives the medians.`,
        ]
      : []),
  ];
}

// ---------------------------------------------------------------------------------------

/**
 * `<date>.md`, or `<date>-<phases>.md` for a partial run; never an existing report of the
 * same day (another run's gets a `-2`, `-3`… suffix instead).
 */
function reportFile(dir: string, date: string): string {
  const base = CONFIG.phases.length === PHASES.length ? date : `${date}-${CONFIG.phases.join('-')}`;
  for (let n = 1; ; n++) {
    const file = join(dir, `${base}${n === 1 ? '' : `-${n}`}.md`);
    if (!existsSync(file)) return file;
  }
}

async function waitForBuild(): Promise<void> {
  // The build may be in progress in another session; give it a moment before giving up.
  await waitFor(() => existsSync(GATEWAY_MAIN), { timeoutMs: 60_000, intervalMs: 500, message: `${GATEWAY_MAIN} (run npm run build)` });
}

async function main(): Promise<void> {
  const deadline = setTimeout(() => {
    console.error(`bench: over the ${CONFIG.deadlineMs / 1000} s deadline, stopping`);
    void shutdown(1);
  }, CONFIG.deadlineMs);
  deadline.unref();

  await waitForBuild();
  if (!RedisServerProcess.isAvailable()) throw new Error('redis-server is not on PATH');
  const loadStart = loadavg();
  log(`config: ${JSON.stringify(CONFIG)}; load average ${loadStart.map((l) => l.toFixed(2)).join(' / ')}`);

  redisServer = await RedisServerProcess.start({ persistent: false, args: ['--maxclients', '1000'] });
  const redisUrl = redisServer.url;
  const redis = new Redis(redisUrl);
  const redisVersion = /^redis_version:(\S+)/m.exec(await redis.info('server'))?.[1] ?? 'unknown';
  log(`redis ${redisVersion} at ${redisUrl}`);

  // The clients are the harness, not the subject: they may collect garbage between runs.
  const clients = [0, 1].map((i) => fork(`clients-${i + 1}`, 'clients.ts', {}, ['--expose-gc']));
  const streamPublisher = fork('publisher-stream', 'publisher.ts', { REDIS_URL: redisUrl, BENCH_MODE: 'stream' });
  const baselinePublisher = fork('publisher-baseline', 'publisher.ts', { REDIS_URL: redisUrl, BENCH_MODE: 'baseline' });
  await Promise.all([...clients, streamPublisher, baselinePublisher].map((helper) => helper.started()));
  const startGateways = (tag: string) => Promise.all([startGatewayPod(redisUrl, `bench-gw-${tag}-1`), startGatewayPod(redisUrl, `bench-gw-${tag}-2`)]);
  const startBaselines = (tag: string) => Promise.all([startBaselinePod(redisUrl, `baseline-${tag}-1`), startBaselinePod(redisUrl, `baseline-${tag}-2`)]);
  const sides: Side[] = [
    {
      key: 'full',
      label: 'full path',
      kind: 'gateway',
      pods: [],
      startPods: startGateways,
      publisher: streamPublisher,
      target: STREAM,
      idleTarget: IDLE_STREAM,
    },
    {
      key: 'baseline',
      label: 'baseline',
      kind: 'baseline',
      pods: [],
      startPods: startBaselines,
      publisher: baselinePublisher,
      target: STREAM,
      idleTarget: IDLE_STREAM,
    },
  ];
  const bench = new Bench(redis, clients, sides);
  await bench.init();
  log(`started: publishers; 2 client processes; phases ${CONFIG.phases.join(', ')}`);

  if (CONFIG.phases.includes('idle')) {
    log(`idle memory: ${CONFIG.idleSockets} sockets per path, ${CONFIG.idleRounds} runs on fresh pods`);
    await bench.idleMemory();
  }
  if (CONFIG.phases.includes('saturation') || CONFIG.phases.includes('latency')) {
    for (const side of sides) side.pods = await side.startPods('load');
    log(`started: gateways pid ${sides[0].pods.map((p) => p.pid).join(', ')}; baseline servers pid ${sides[1].pods.map((p) => p.pid).join(', ')}`);
    log(`load sockets: ${CONFIG.sockets} per path`);
    await bench.connectLoad();
    log('warm-up');
    await bench.warmUp();
  }
  if (CONFIG.phases.includes('saturation')) {
    log(`saturation: ${CONFIG.events} events, ${CONFIG.rounds} rounds`);
    await bench.saturation();
  }
  if (CONFIG.phases.includes('latency')) {
    log(`latency at ${CONFIG.rates.join(', ')} events/s, ABBA halves of ${CONFIG.latencySeconds / 2} s`);
    await bench.latency();
  }

  const { text, markdown, marked } = table(bench);
  console.log(`\n${text}\n`);
  console.log(
    'Ratios are full path / baseline: above 1 means the full path has more of it (better for deliveries/s and connect rate; worse for latency, CPU and memory).',
  );
  if (marked) console.log(OVERLOAD_NOTE);
  for (const note of bench.notes) console.log(`note: ${note}`);

  const date = execFileSync('date', ['+%F'], { encoding: 'utf8' }).trim();
  const dir = join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = reportFile(dir, date);
  const report = [
    `# Benchmark: full path vs raw Socket.IO broadcast — ${date}`,
    '',
    'Produced by `npm run bench` (bench/run.ts). Both paths ran side by side, interleaved, in one run on one machine.',
    '',
    '## Setup',
    '',
    ...environment(redisVersion, loadStart),
    '',
    '## Results',
    '',
    markdown,
    '',
    'Ratios are full path / baseline: above 1 means the full path has more of it — better for deliveries/s and connect rate, worse for latency, CPU and memory.',
    ...(marked ? ['', OVERLOAD_NOTE] : []),
    ...(bench.notes.length ? ['', '**Notes from the run:**', '', ...bench.notes.map((n) => `- ${n}`)] : []),
    '',
    '## Interpretation',
    '',
    ...interpretation(bench).flatMap((p) => [p, '']),
    `Load average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}. Total run time ${((Date.now() - startedAt) / 1000).toFixed(0)} s.`,
    '',
  ].join('\n');
  writeFileSync(file, report);
  log(`report written to ${file}`);
  await redis.quit();
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  })
  .finally(() => shutdown(Number(process.exitCode ?? 0)));
