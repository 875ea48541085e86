import { cpus, loadavg } from 'node:os';
import { type LoadConfig, offeredDeliveries, type SideKey } from './config';
import type { DrillResult } from './drills';
import type { PublishOnly } from './publish-only';
import type { Histogram } from './stats';
import type { Snapshot } from './system';

/** Figures of one measured window (two snapshots and the latency histogram between them). */
export interface Phase {
  seconds: number;
  deliveries: number;
  deliveriesPerSec: number;
  eventsPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  serverCpuPerDelivery: number;
  /** The same, less what the pods spend idle (pings, presence beats) over as long. */
  serverCpuPerDeliveryNet: number;
  serverCores: number;
  redisCpuPerEvent: number;
  redisCpuPerEventNet: number;
  redisCores: number;
  publisherCpuPerEvent: number;
  clientCpuPerDelivery: number;
  clientCores: number;
  lost: number;
  dup: number;
  errors: number;
  unexpectedCloses: number;
  churned: number;
}

export interface SideResult {
  side: SideKey;
  round: number;
  connected: number;
  connectPerSec: number;
  /** CPU-µs per socket connected and subscribed, over the connect phase, by process kind. */
  connectCpu: ConnectCpu;
  idleRssPerSocketKb: number;
  idle: IdleCpu;
  clientRssPerSocketKb: number;
  steady: Phase;
  /** The publish-only phase (null when --burst-rate 0). */
  publishOnly: PublishOnly | null;
  drills: Array<{ result: DrillResult; phase: Phase }>;
  verify: { checked: number; behind: number; missing: number; ahead: number; unknown: number; notReady: number };
  published: number;
  /** Everything that counts as an error over the whole run, by kind. */
  errors: Record<string, number>;
  lostTotal: number;
  dupTotal: number;
  /** Full path: what the pods' backplanes repaired by themselves, read from their /metrics at the end (NaN for the baseline). */
  selfRepairs: number;
  seconds: number;
}

const ERROR_KINDS = ['connectFailures', 'subscribeErrors', 'protocolErrors', 'epochChanges', 'eventsBeforeAck', 'gaveUp'] as const;

export function errorCount(s: Snapshot): number {
  return ERROR_KINDS.reduce((sum, k) => sum + s.clients[k], 0) + s.publishErrors;
}

export function errorsByKind(s: Snapshot): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(ERROR_KINDS.map((k) => [k, s.clients[k]]));
  out.publishErrors = s.publishErrors;
  return out;
}

/** CPU the pods and Redis use with every socket connected and nothing published, µs per second. */
export interface IdleCpu {
  podUsPerSec: number;
  redisUsPerSec: number;
}

export function idleCpu(a: Snapshot, b: Snapshot): IdleCpu {
  const secs = (b.atUs - a.atUs) / 1e6;
  return { podUsPerSec: podCpuDelta(a, b) / secs, redisUsPerSec: (b.redisCpuUs - a.redisCpuUs) / secs };
}

export interface ConnectCpu {
  podUsPerSocket: number;
  clientUsPerSocket: number;
  redisUsPerSocket: number;
}

/** Where a connect + subscribe's CPU goes: every process's CPU over the connect phase ÷ the sockets it brought. */
export function connectCpu(a: Snapshot, b: Snapshot): ConnectCpu {
  const sockets = Math.max(1, b.clients.ready - a.clients.ready);
  return {
    podUsPerSocket: podCpuDelta(a, b) / sockets,
    clientUsPerSocket: (b.clientCpuUs - a.clientCpuUs) / sockets,
    redisUsPerSocket: (b.redisCpuUs - a.redisCpuUs) / sockets,
  };
}

function podCpuDelta(a: Snapshot, b: Snapshot): number {
  // A pod killed inside the window counts for nothing (its last CPU reading is lost with it).
  return b.podCpuUs.reduce((sum, after, j) => sum + (Number.isFinite(after) && Number.isFinite(a.podCpuUs[j]) ? after - a.podCpuUs[j] : 0), 0);
}

export function phase(a: Snapshot, b: Snapshot, latency: Histogram, idle: IdleCpu): Phase {
  const us = b.atUs - a.atUs;
  const deliveries = b.clients.received - a.clients.received;
  const events = b.published - a.published;
  const podCpu = podCpuDelta(a, b);
  const redisCpu = b.redisCpuUs - a.redisCpuUs;
  const clientCpu = b.clientCpuUs - a.clientCpuUs;
  return {
    seconds: us / 1e6,
    deliveries,
    deliveriesPerSec: deliveries / (us / 1e6),
    eventsPerSec: events / (us / 1e6),
    p50: latency.percentileUs(50) / 1000,
    p99: latency.percentileUs(99) / 1000,
    p999: latency.percentileUs(99.9) / 1000,
    max: latency.maxUs / 1000,
    serverCpuPerDelivery: podCpu / Math.max(1, deliveries),
    serverCpuPerDeliveryNet: (podCpu - (idle.podUsPerSec * us) / 1e6) / Math.max(1, deliveries),
    serverCores: podCpu / us,
    redisCpuPerEvent: redisCpu / Math.max(1, events),
    redisCpuPerEventNet: (redisCpu - (idle.redisUsPerSec * us) / 1e6) / Math.max(1, events),
    redisCores: redisCpu / us,
    publisherCpuPerEvent: (b.publisherCpuUs - a.publisherCpuUs) / Math.max(1, events),
    clientCpuPerDelivery: clientCpu / Math.max(1, deliveries),
    clientCores: clientCpu / us,
    lost: b.clients.lost - a.clients.lost,
    dup: b.clients.dup - a.clients.dup,
    errors: errorCount(b) - errorCount(a),
    unexpectedCloses: b.clients.unexpectedCloses - a.clients.unexpectedCloses,
    churned: b.clients.churned - a.clients.churned,
  };
}

/** Each drill's notes, per side (what went unfinished, what is n/a on the baseline and why). */
function drillNotes(cfg: LoadConfig, results: SideResult[]): string[] {
  const lines: string[] = [];
  for (const [d, name] of cfg.drills.entries())
    for (const r of results)
      for (const note of r.drills[d]?.result.notes ?? [])
        lines.push(`- ${name}, ${r.side === 'full' ? 'full path' : 'baseline'}${results.length > 2 ? ` (round ${r.round + 1})` : ''}: ${note}`);
  return lines.length ? ['', ...lines] : [];
}

function fmt(value: number | undefined, digits: number): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A table row: how to read the figure from one side's result; `sum` adds rounds up instead of taking the median. */
type Row = [label: string, pick: (r: SideResult) => number, digits: number, sum?: 'sum'];

function median(values: number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** One column per side; with several rounds, the median of the rounds (or their sum). */
function table(results: SideResult[], rows: Row[]): string[] {
  const cols = (['full', 'baseline'] as const).map((side) => results.filter((r) => r.side === side)).filter((rounds) => rounds.length > 0);
  const both = cols.length === 2;
  const header = ['Metric', ...cols.map((rounds) => (rounds[0].side === 'full' ? 'Full path' : 'Baseline')), ...(both ? ['Full / baseline'] : [])];
  const lines = [`| ${header.join(' | ')} |`, `|---|${cols.map(() => '---:|').join('')}${both ? '---:|' : ''}`];
  for (const [label, pick, digits, sum] of rows) {
    const values = cols.map((rounds) => (sum ? rounds.reduce((total, r) => total + pick(r), 0) : median(rounds.map(pick))));
    const ratio = both ? values[0] / values[1] : Number.NaN;
    lines.push(`| ${label} | ${values.map((v) => fmt(v, digits)).join(' | ')}${both ? ` | ${values[1] === 0 ? 'n/a' : fmt(ratio, 2)}` : ''} |`);
  }
  return lines;
}

export function markdown(cfg: LoadConfig, results: SideResult[], date: string, environment: string[], drillText: string[]): string {
  const hot = cfg.hotEvery > 0 ? Math.ceil(cfg.sockets / cfg.hotEvery) : 0;
  const rows: Row[] = [
    ['Sockets connected and subscribed', (r) => r.connected, 0],
    ['Connect + subscribe rate, sockets/s', (r) => r.connectPerSec, 0],
    ['… pods: CPU-µs per socket connected and subscribed', (r) => r.connectCpu.podUsPerSocket, 0],
    ['… client processes: CPU-µs per socket', (r) => r.connectCpu.clientUsPerSocket, 0],
    ['… Redis: CPU-µs per socket', (r) => r.connectCpu.redisUsPerSocket, 1],
    ['Idle RSS per socket (pods, RSS delta / sockets), KB', (r) => r.idleRssPerSocketKb, 1],
    ['Deliveries/s offered', () => offeredDeliveries(cfg), 0],
    ['Deliveries/s (steady phase)', (r) => r.steady.deliveriesPerSec, 0],
    ['Events/s published', (r) => r.steady.eventsPerSec, 1],
    ['Publish → deliver latency p50, ms', (r) => r.steady.p50, 2],
    ['Publish → deliver latency p99, ms', (r) => r.steady.p99, 2],
    ['Publish → deliver latency p99.9, ms', (r) => r.steady.p999, 2],
    ['Publish → deliver latency max, ms', (r) => r.steady.max, 1],
    ['Server CPU-µs per delivery (all pods)', (r) => r.steady.serverCpuPerDelivery, 2],
    ["… less the pods' idle CPU (pings, presence) over as long", (r) => r.steady.serverCpuPerDeliveryNet, 2],
    ['Server cores busy', (r) => r.steady.serverCores, 2],
    ['Server cores busy when idle (every socket connected, nothing published)', (r) => r.idle.podUsPerSec / 1e6, 3],
    [
      'Redis CPU-µs per event, steady phase: all Redis CPU (churn connects and catch-ups, presence, checkpoints) ÷ the few events published',
      (r) => r.steady.redisCpuPerEvent,
      1,
    ],
    ["… less Redis's idle CPU over as long", (r) => r.steady.redisCpuPerEventNet, 1],
    ['Redis cores busy', (r) => r.steady.redisCores, 3],
    ['Redis cores busy when idle', (r) => r.idle.redisUsPerSec / 1e6, 3],
    ['Publisher CPU-µs per event', (r) => r.steady.publisherCpuPerEvent, 1],
    ['Client CPU-µs per delivery', (r) => r.steady.clientCpuPerDelivery, 2],
    ['Client cores busy', (r) => r.steady.clientCores, 2],
    ['Client RSS per socket (client processes, RSS delta / sockets), KB', (r) => r.clientRssPerSocketKb, 1],
    ['Sockets churned (closed and replaced) in the steady phase', (r) => r.steady.churned, 0],
    ['Lost (steady phase)', (r) => r.steady.lost, 0, 'sum'],
    ['Duplicates (steady phase)', (r) => r.steady.dup, 0, 'sum'],
    ['Unexpected disconnects (steady phase)', (r) => r.steady.unexpectedCloses, 0, 'sum'],
    ['Lost (whole run)', (r) => r.lostTotal, 0, 'sum'],
    ['Duplicates (whole run)', (r) => r.dupTotal, 0, 'sum'],
    ['Errors (whole run)', (r) => Object.values(r.errors).reduce((a, b) => a + b, 0), 0, 'sum'],
    ['Subscriptions checked at the end', (r) => r.verify.checked, 0, 'sum'],
    ['… behind the last published seq (missing events)', (r) => r.verify.missing, 0, 'sum'],
    [
      "Backplane self-repairs on the pods running at the end (path repairs + quiet feeds found behind; a killed pod's are lost)",
      (r) => r.selfRepairs,
      0,
      'sum',
    ],
  ];
  const po = (pick: (p: PublishOnly) => number) => (r: SideResult) => (r.publishOnly ? pick(r.publishOnly) : Number.NaN);
  const publishRows: Row[] =
    cfg.burstRate > 0
      ? [
          ['**Redis CPU-µs per published event (publish-only phase), less idle**', po((p) => p.redisCpuPerEventNet), 1],
          ['… gross (idle included)', po((p) => p.redisCpuPerEvent), 1],
          ['Events/s published (burst + steady streams)', po((p) => p.eventsPerSec), 0],
          ['Redis cores busy', po((p) => p.redisCores), 3],
          ['Watcher sockets (every pod subscribes to every burst stream)', po((p) => p.watchers), 0],
          ['Watcher deliveries/s', po((p) => p.deliveriesPerSec), 0],
          ['Watcher latency p50, ms', po((p) => p.p50), 2],
          ['Watcher latency p99, ms', po((p) => p.p99), 2],
          ['Watchers: lost, duplicates, subscriptions short at the end', po((p) => p.lost + p.dup + p.behind), 0, 'sum'],
          ['Publish errors', po((p) => p.publishErrors), 0, 'sum'],
        ]
      : [];
  const drillRows: Row[] = [];
  for (const [d, name] of cfg.drills.entries()) {
    const figures = results[0]?.drills[d]?.result.figures ?? [];
    figures.forEach(([label, , digits], f) => drillRows.push([`${name}: ${label}`, (r) => r.drills[d]?.result.figures[f]?.[1] ?? Number.NaN, digits]));
    drillRows.push(
      [`${name}: lost`, (r) => r.drills[d]?.result.lost ?? Number.NaN, 0, 'sum'],
      [`${name}: duplicates`, (r) => r.drills[d]?.result.dup ?? Number.NaN, 0, 'sum'],
      [`${name}: errors`, (r) => r.drills[d]?.phase.errors ?? Number.NaN, 0, 'sum'],
      [`${name}: latency p99 in the drill window (replayed events count from their publish), ms`, (r) => r.drills[d]?.phase.p99 ?? Number.NaN, 1],
      [`${name}: latency max in the drill window, ms`, (r) => r.drills[d]?.phase.max ?? Number.NaN, 0],
    );
  }
  const fulls = results.filter((r) => r.side === 'full');
  const bases = results.filter((r) => r.side === 'baseline');
  const verdict: string[] = [];
  for (const full of fulls) {
    const errors = Object.entries(full.errors).filter(([, v]) => v > 0);
    const exact = full.verify.behind === 0 && full.verify.ahead === 0 && full.verify.notReady === 0;
    verdict.push(
      `- Full path${fulls.length > 1 ? `, round ${full.round + 1}` : ''}: ${full.lostTotal === 0 && full.dupTotal === 0 && errors.length === 0 && exact ? '**PASS**' : '**FAIL**'} — lost ${full.lostTotal}, duplicates ${full.dupTotal}, errors ${errors.length ? errors.map(([k, v]) => `${k} ${v}`).join(', ') : 0}; ` +
        `${full.verify.checked - full.verify.behind - full.verify.ahead} of ${full.verify.checked} subscriptions ended exactly at their stream's last published seq${full.verify.notReady ? ` (${full.verify.notReady} sockets not connected at the end)` : ''}.`,
    );
  }
  if (fulls.length && bases.length) {
    const ratio = median(fulls.map((r) => r.steady.p99)) / median(bases.map((r) => r.steady.p99));
    const bar = cfg.preset === 'latency1k' ? ` — ${ratio <= 1.1 ? '**meets**' : '**misses**'} the issue's bar (≤ 1.10 at 1k subscribers over two pods)` : '';
    const perRound =
      fulls.length > 1
        ? ` (medians; per round, in run order: ${fulls.map((f, i) => `${fmt(f.steady.p99, 1)} / ${fmt(bases[i]?.steady.p99, 1)} ms`).join(', ')})`
        : '';
    verdict.push(`- p99 latency full / baseline: ${fmt(ratio, 2)}${bar}${perRound}.`);
    const baseLost = bases.reduce((sum, r) => sum + r.lostTotal, 0);
    if (cfg.drills.length && baseLost > 0)
      verdict.push(`- The baseline has no replay: its sockets lost ${baseLost.toLocaleString('en-US')} deliveries over the run (drills included).`);
  }
  return [
    `# Load: full path vs Socket.IO + sharded redis adapter — ${date} (${cfg.preset})`,
    '',
    `Produced by \`npm run load\` (load/run.ts). Each side ran alone on the machine, one after the other, with the same parameters${cfg.rounds > 1 ? `; ${cfg.rounds} rounds in ABBA order, the table shows each figure's median over the rounds (losses, errors and counts: their sum)` : ''}.`,
    '',
    '## Parameters',
    '',
    `- ${cfg.sockets.toLocaleString('en-US')} sockets per side over ${cfg.pods} pods and ${cfg.clients} client processes (${cfg.lib === 'raw' ? 'raw Engine.IO frames over ws' : 'socket.io-client'}), bound round robin to ${cfg.addrs.length} source addresses (${cfg.addrs[0]}–${cfg.addrs[cfg.addrs.length - 1]}).`,
    `- ${cfg.streams} streams with ~${Math.round(cfg.sockets / cfg.streams).toLocaleString('en-US')} subscribers each at ${cfg.rate} events/s${hot ? `, plus one hot stream with ${hot.toLocaleString('en-US')} subscribers at ${cfg.hotRate} events/s` : ''}: ${fmt(offeredDeliveries(cfg), 0)} deliveries/s offered; ${cfg.padBytes}-byte padding per payload.`,
    `- Publishing: ${cfg.publishers} publisher process(es), open loop; full path ${cfg.via === 'direct' ? 'StreamPublisher (Lua) directly' : cfg.via === 'http' ? 'through the HTTP publish API' : 'alternating StreamPublisher and the HTTP API'}; baseline \`io.to(room).emit\` through the sharded adapter.`,
    `- Churn ${cfg.churn} sockets/s closed and replaced by fresh ones; warm-up ${cfg.warmup} s, steady phase ${cfg.duration} s; drills: ${cfg.drills.length ? cfg.drills.join(', ') : 'none'}.`,
    ...drillText.map((t) => `- ${t}`),
    ...environment,
    '',
    '## Results',
    '',
    ...table(results, rows),
    ...(publishRows.length
      ? [
          '',
          '### Publish-only phase (Redis CPU per published event)',
          '',
          `Churn off, every socket still subscribed; for ${cfg.burstFor} s the publishers add ${cfg.burstRate.toLocaleString('en-US')} events/s over ${cfg.burstStreams} extra streams, each watched by one socket on every pod (so every pod subscribes to every one of them, and deliveries stay one per pod and event). Redis CPU (\`INFO cpu\`) over the phase, less Redis's idle CPU (every socket connected, nothing published) over as long, ÷ every event published in it.`,
          '',
          ...table(results, publishRows),
        ]
      : []),
    ...(drillRows.length ? ['', '### Drills', '', ...table(results, drillRows), ...drillNotes(cfg, results)] : []),
    '',
    ...verdict,
    '',
    "Ratios are full path / baseline. Latency is the publisher's send time (CLOCK_MONOTONIC µs in the payload) to the client's frame receipt, every delivery counted (10 µs histogram buckets); " +
      'it includes each pod writing an event to its sockets one after the other and each client process reading its sockets one after the other, alike on both sides. ' +
      'Server CPU is from /proc/<pid>/stat of the pods (10 ms ticks), Redis CPU from `INFO cpu`; per delivery and per event over the steady phase (Redis and publisher figures include subscribes from churn, presence and fixed background work, which dominate at a few events/s). ' +
      "Lost and duplicates: every client checks each subscription gapless (full path: envelope seq; baseline: the payload counter), and at the end every subscription must sit at its stream's last published seq.",
    '',
    `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, load average at the end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}; run time ${results.map((r) => `${r.side} ${Math.round(r.seconds)} s`).join(', ')}.`,
    '',
  ].join('\n');
}
