import { rollingRestart } from '../test/support/drills';
import { nowUs, sleep } from '../bench/common';
import { type LoadConfig, offeredDeliveries, proxiesPerPod } from './config';
import type { Histogram } from './stats';
import type { LoadSystem, Snapshot } from './system';

/**
 * Fault drills: phases that run while the steady load goes on. A drill does its damage,
 * waits for the system to recover, and reports what the clients saw during its window.
 * The driver runs `cfg.drills` in order after the steady phase, on both sides alike; a
 * figure that means nothing on the baseline (it has no replay, no epochs) is NaN there and
 * the report prints n/a. To add a drill, add an entry to DRILLS.
 *
 * The faults are the ones `npm test` runs small (test/drills.e2e-spec.ts): `rollingRestart`
 * from test/support/drills.ts, and TcpProxy (libs/runtime/src/testing/tcp-proxy.ts) drops,
 * here in proxy processes of their own (load/proxy-worker.ts) in front of each pod. The
 * jitter is the client processes' own resets here (test/support's `connectionJitter` resets
 * through proxies).
 */
export interface DrillContext {
  sys: LoadSystem;
  cfg: LoadConfig;
  log(line: string): void;
}

export interface DrillResult {
  name: string;
  /** Figures for the report: [label, value, digits]; NaN prints as n/a. */
  figures: Array<[string, number, number]>;
  /** Lost / duplicated deliveries seen by clients during the drill window. */
  lost: number;
  dup: number;
  /** The drill's window, for latency and error accounting. */
  before: Snapshot;
  after: Snapshot;
  latency: Histogram;
  notes: string[];
  /** Counts of error kinds (report.ts) that this drill causes by design, left out of the errors. */
  expected?: Record<string, number>;
}

export interface Drill {
  name: string;
  describe(cfg: LoadConfig): string;
  run(ctx: DrillContext): Promise<DrillResult>;
}

/** After the recovery, the load goes on this long inside the drill window. */
const SETTLE_MS = 5_000;

type Hists = Record<'latency' | 'replay' | 'resubscribe' | 'recovery', Histogram>;

/** Starts a drill's window: every histogram reset, a snapshot. */
async function open(sys: LoadSystem): Promise<Snapshot> {
  await Promise.all((['latency', 'replay', 'resubscribe', 'recovery'] as const).map((which) => sys.histogram(true, which)));
  return sys.snapshot();
}

/** Ends it: the load goes on for SETTLE_MS, then the snapshot and the histograms of the window. */
async function close(sys: LoadSystem): Promise<{ after: Snapshot; hists: Hists }> {
  await sleep(SETTLE_MS);
  const after = await sys.snapshot();
  const [latency, replay, resubscribe, recovery] = await Promise.all(
    (['latency', 'replay', 'resubscribe', 'recovery'] as const).map((which) => sys.histogram(true, which)),
  );
  return { after, hists: { latency, replay, resubscribe, recovery } };
}

/**
 * Waits until every socket that lost its connection since `mark` is back (resubscribed):
 * at least `expected` drops seen (or 5 s passed) and none still away. Answers the last
 * snapshot and whether it got there within `limitMs`.
 */
async function back(sys: LoadSystem, mark: Snapshot, expected: number, limitMs: number): Promise<{ now: Snapshot; ok: boolean }> {
  let now = mark;
  for (const started = Date.now(); Date.now() - started < limitMs; ) {
    await sleep(250);
    now = await sys.snapshot();
    const dropped = now.clients.unexpectedCloses - mark.clients.unexpectedCloses;
    if (now.clients.down === 0 && (dropped >= expected || Date.now() - started > 5_000)) return { now, ok: true };
  }
  return { now, ok: false };
}

const ms = (h: Histogram, p: number) => h.percentileUs(p) / 1000;
const delta = (
  before: Snapshot,
  after: Snapshot,
  key: 'replayed' | 'snapshotResyncs' | 'resumes' | 'unexpectedCloses' | 'epochChanges' | 'drains' | 'received' | 'unavailable',
) => after.clients[key] - before.clients[key];

/** Figures every reconnecting drill reports: resubscribes, replays and how long they took. */
function reconnectFigures(gateway: boolean, before: Snapshot, after: Snapshot, hists: Hists): Array<[string, number, number]> {
  const fullOnly = (v: number) => (gateway ? v : Number.NaN);
  return [
    ['connections lost', delta(before, after, 'unexpectedCloses'), 0],
    ['resubscribes (full path: sinceSeq/epoch/lastId; baseline: join again)', delta(before, after, 'resumes'), 0],
    ['lost → back (resubscribed) p50, s', ms(hists.recovery, 50) / 1000, 2],
    ['lost → back (resubscribed) p99, s', ms(hists.recovery, 99) / 1000, 2],
    ['resubscribe → acknowledged p50, ms', ms(hists.resubscribe, 50), 1],
    ['resubscribe → acknowledged p99, ms', ms(hists.resubscribe, 99), 1],
    ['events replayed', fullOnly(delta(before, after, 'replayed')), 0],
    ['replayed events: publish → delivery p50, ms', fullOnly(ms(hists.replay, 50)), 0],
    ['replayed events: publish → delivery p99, ms', fullOnly(ms(hists.replay, 99)), 0],
    ['resubscribes answered by a snapshot instead of a replay', fullOnly(delta(before, after, 'snapshotResyncs')), 0],
    ['handshakes or subscribes answered UNAVAILABLE / TIMEOUT (went elsewhere or reconnected, and resumed)', delta(before, after, 'unavailable'), 0],
  ];
}

function result(
  name: string,
  figures: DrillResult['figures'],
  before: Snapshot,
  after: Snapshot,
  hists: Hists,
  notes: string[],
  expected?: Record<string, number>,
): DrillResult {
  return {
    name,
    figures,
    lost: after.clients.lost - before.clients.lost,
    dup: after.clients.dup - before.clients.dup,
    before,
    after,
    latency: hists.latency,
    notes,
    expected,
  };
}

const BASELINE_NO_REPLAY = 'no replay, no epochs (those figures are n/a): a socket that comes back just joins again, what it missed is counted lost';

// ---------------------------------------------------------------------------------------
// Pod faults.

/**
 * pod-kill: SIGKILL the pod holding the most sockets. Its clients see the connection drop,
 * reconnect to other pods after a random delay (up to reconnectJitterMs) and resubscribe
 * with sinceSeq/epoch/lastId; the replay must give back every event they missed. Recovery
 * time = kill → the last moved socket's resubscribe acknowledged. The pod is started again
 * after the window (empty), so the drills after it have every pod.
 */
const podKill: Drill = {
  name: 'pod-kill',
  describe: (cfg) =>
    `SIGKILL the pod holding the most sockets (~${Math.round(cfg.sockets / cfg.pods).toLocaleString('en-US')}) mid-stream; clients reconnect to the other pods within ${cfg.reconnectJitterMs} ms (random) and resubscribe with sinceSeq/epoch/lastId; the pod is started again after the drill.`,
  async run({ sys, log }) {
    const notes: string[] = [];
    const before = await open(sys);
    const victim = before.clients.perPod.reduce((best, n, j) => (sys.pods[j].alive && n > before.clients.perPod[best] ? j : best), 0);
    const moved = before.clients.perPod[victim];
    const pod = sys.pods[victim];
    log(`  pod-kill: SIGKILL ${pod.name} (pid ${pod.pid}) holding ${moved} sockets`);
    const killedAt = nowUs();
    await pod.kill();
    await sys.announcePods();

    // Recovered when every socket that lost its connection has resubscribed on another pod.
    // (Churn goes on: a socket it closed just before the kill comes back fresh, not counted.)
    const limitMs = 30_000 + moved * 10;
    const { now, ok } = await back(sys, before, moved, limitMs);
    const dropped = now.clients.unexpectedCloses - before.clients.unexpectedCloses;
    const recovered = now.clients.recovered - before.clients.recovered;
    const recoverMs = recovered > 0 ? (now.clients.lastRecoveredUs - killedAt) / 1000 : Number.NaN;
    if (!ok) notes.push(`${now.clients.down} sockets were still away after ${limitMs / 1000} s`);
    log(`  pod-kill: ${dropped} connections dropped, ${recovered} sockets resubscribed elsewhere; the last ${(recoverMs / 1000).toFixed(2)} s after the kill`);
    const { after, hists } = await close(sys);

    const restartedAt = Date.now();
    await pod.start();
    await sys.podMoved(victim);
    await sys.announcePods();
    log(`  pod-kill: ${pod.name} started again in ${((Date.now() - restartedAt) / 1000).toFixed(1)} s (empty; reconnects fill it)`);
    return result(
      'pod-kill',
      [
        ['sockets on the killed pod', moved, 0],
        ['sockets back (resubscribed on another pod)', recovered, 0],
        ['time to recover: kill → last resubscribe acknowledged, s', recoverMs / 1000, 2],
        ...reconnectFigures(sys.side === 'full', before, after, hists),
      ],
      before,
      after,
      hists,
      notes,
    );
  },
};

/**
 * rolling-restart: every pod in turn gets SIGTERM, drains (the gateway tells its sockets
 * `draining` and lets them go 500 every 100 ms), exits and is started again at once, while
 * its sockets reconnect to the others and resubscribe with sinceSeq/epoch/lastId; the next
 * pod goes only when every moved socket is back. (test/support/drills.ts `rollingRestart`.)
 */
const rollingRestartDrill: Drill = {
  name: 'rolling-restart',
  describe: (cfg) =>
    `each of the ${cfg.pods} pods in turn: SIGTERM → drain → exit → start again (gateway: \`draining\` notices, 500 sockets let go per 100 ms; baseline: socket.io has no drain, the process exits at once), the next pod once every moved socket resubscribed elsewhere.`,
  async run({ sys, log }) {
    const notes: string[] = [];
    const before = await open(sys);
    const moved: number[] = [];
    const recoverMs: number[] = [];
    let mark = before;
    let stoppedAt = 0;
    const steps = await rollingRestart(
      sys.pods.map((pod, j) => ({
        get url() {
          return pod.url;
        },
        stop: () => pod.stop(),
        start: async () => {
          await pod.start();
          await sys.podMoved(j);
          await sys.announcePods();
        },
      })),
      {
        before: async (_, j) => {
          mark = await sys.snapshot();
          moved[j] = mark.clients.perPod[j];
          log(`  rolling-restart: SIGTERM ${sys.pods[j].name} holding ${moved[j]} sockets`);
          // Out of the balancer first (its readiness goes red with the SIGTERM too).
          sys.pods[j].alive = false;
          await sys.announcePods();
          stoppedAt = nowUs();
        },
        after: async (_, j) => {
          const limitMs = 30_000 + moved[j] * 10;
          const { now, ok } = await back(sys, mark, moved[j], limitMs);
          if (!ok) notes.push(`${sys.pods[j].name}: ${now.clients.down} sockets still away after ${limitMs / 1000} s`);
          recoverMs[j] = now.clients.lastRecoveredUs > stoppedAt ? (now.clients.lastRecoveredUs - stoppedAt) / 1000 : Number.NaN;
          log(`  rolling-restart: ${sys.pods[j].name}'s sockets back ${(recoverMs[j] / 1000).toFixed(2)} s after its SIGTERM`);
        },
      },
    );
    for (const [j, step] of steps.entries())
      log(
        `  rolling-restart: ${sys.pods[j].name} exit ${step.exitCode}, drained in ${(step.drainMs / 1000).toFixed(2)} s, ready again ${(step.startMs / 1000).toFixed(2)} s later`,
      );
    const { after, hists } = await close(sys);
    const max = (values: number[]) => Math.max(...values.filter(Number.isFinite));
    return result(
      'rolling-restart',
      [
        ['pods restarted', steps.length, 0],
        ['sockets moved (on each pod at its SIGTERM, added up)', moved.reduce((a, b) => a + b, 0), 0],
        ['`draining` notices received', sys.side === 'full' ? delta(before, after, 'drains') : Number.NaN, 0],
        ['SIGTERM → exit (drain), slowest pod, s', max(steps.map((s) => s.drainMs)) / 1000, 2],
        ['start → ready, slowest pod, s', max(steps.map((s) => s.startMs)) / 1000, 2],
        ['SIGTERM → its last socket resubscribed elsewhere, slowest pod, s', max(recoverMs) / 1000, 2],
        ...reconnectFigures(sys.side === 'full', before, after, hists),
      ],
      before,
      after,
      hists,
      notes,
    );
  },
};

// ---------------------------------------------------------------------------------------
// Network faults: the jitter (resets by the clients), and drops through TCP proxies in front of the pods.

/**
 * Before the first network drill: TCP proxy processes in front of every pod, and every
 * socket moved onto them (closed and reopened through its pod's proxy at migrateRate/s,
 * resuming from its position). The steady phase and the drills before ran without them.
 */
async function throughProxies({ sys, cfg, log }: DrillContext): Promise<string | null> {
  if (sys.proxies) return null;
  const perPod = proxiesPerPod(cfg);
  await sys.startProxies(perPod);
  const started = Date.now();
  await sys.eachClient('migrate', { perSecond: cfg.migrateRate / cfg.clients });
  let now = await sys.snapshot();
  const limitMs = 60_000 + (cfg.sockets / cfg.migrateRate) * 3000;
  while (Date.now() - started < limitMs && (now.clients.onOldRoutes > 0 || now.clients.down > 0)) {
    await sleep(500);
    now = await sys.snapshot();
  }
  await sys.eachClient('migrate', { perSecond: 0 });
  const line = `${now.clients.migrated} sockets moved onto ${perPod * sys.pods.length} TCP proxy processes (${perPod} per pod) in ${((Date.now() - started) / 1000).toFixed(1)} s${now.clients.onOldRoutes ? `, ${now.clients.onOldRoutes} still direct` : ''}`;
  log(`  ${line}`);
  return line;
}

/**
 * jitter, in the shape of AnyCable's published benchmark: for jitterFor seconds, every
 * client connection is force-closed (TCP reset, by its client process) once it has been
 * connected and subscribed for a random 0.8–1.2 × jitterPeriod, and its client stays away
 * ~jitterOffline ms before reconnecting and resubscribing; publishing goes on at the steady
 * rates. The resets come from the clients rather than from TCP proxies in front of the pods
 * (as in `npm test`'s small drill, test/support/drills.ts `connectionJitter`): at 50k sockets
 * a proxy hop for every delivery took more CPU than this machine had left for the reconnects.
 */
const jitter: Drill = {
  name: 'jitter',
  describe: (cfg) =>
    `for ${cfg.jitterFor} s every client connection is reset (TCP RST, by its client process) once it has been connected and subscribed for a random ${(0.8 * cfg.jitterPeriod).toFixed(1)}–${(1.2 * cfg.jitterPeriod).toFixed(1)} s, and its client stays away ${cfg.jitterOffline} ms ±25 % before it resubscribes (AnyCable's benchmark: every ~15 s, ~2 s away, 2 events/s); each socket gets ${cfg.rate} events/s${cfg.hotEvery ? ` (+${cfg.hotRate}/s on the hot stream for ${Math.round(100 / cfg.hotEvery)} %)` : ''}.`,
  async run(ctx) {
    const { sys, cfg, log } = ctx;
    const notes: string[] = [];
    const before = await open(sys);
    await sys.eachClient('offline', { ms: cfg.jitterOffline });
    log(`  jitter: resetting every connection every ~${cfg.jitterPeriod} s for ${cfg.jitterFor} s`);
    const period = cfg.jitterPeriod * 1000;
    const runs = await sys.eachClient<{ forceClosed: number }>(
      'jitter',
      { minMs: 0.8 * period, maxMs: 1.2 * period, durationMs: cfg.jitterFor * 1000 },
      cfg.jitterFor * 1000 + 60_000,
    );
    const resets = runs.reduce((n, r) => n + r.forceClosed, 0);
    await sys.eachClient('offline', { ms: 0 });
    const mid = await sys.snapshot();
    const limitMs = 30_000 + cfg.sockets * 10;
    const { now, ok } = await back(sys, mid, 0, limitMs);
    if (!ok) notes.push(`${now.clients.down} sockets still away ${limitMs / 1000} s after the jitter ended`);
    const { after, hists } = await close(sys);
    const received = delta(before, after, 'received');
    const lost = after.clients.lost - before.clients.lost;
    const dup = after.clients.dup - before.clients.dup;
    log(`  jitter: ${resets} connections reset, ${delta(before, after, 'resumes')} resubscribes, lost ${lost}, dup ${dup}`);
    return result(
      'jitter',
      [
        ['connections reset by the clients', resets, 0],
        ['delivered, % of the events published to the sockets’ streams', (100 * (received - dup)) / Math.max(1, received - dup + lost), 3],
        ...reconnectFigures(sys.side === 'full', before, after, hists),
      ],
      before,
      after,
      hists,
      sys.side === 'full' ? notes : [...notes, BASELINE_NO_REPLAY],
    );
  },
};

const DROP_MODES = ['refuse', 'blackhole', 'reset'] as const;

/**
 * network-drops: `drops` times, every proxy drops for dropMs at once (every open connection
 * reset; new ones refused, held without an answer, or reset, in turn — TcpProxy.drop); the
 * next drop once every socket is back. Recovery = the drop's end → the last socket back.
 */
const networkDrops: Drill = {
  name: 'network-drops',
  describe: (cfg) =>
    `${cfg.drops} network drops of ${cfg.dropMs} ms on every TCP proxy in front of the pods at once (open connections reset; new ones ${DROP_MODES.slice(0, cfg.drops).join(', then ')}), the next once every socket is back.`,
  async run(ctx) {
    const { sys, cfg, log } = ctx;
    const notes: string[] = [];
    const moved = await throughProxies(ctx);
    if (moved) notes.push(moved);
    const before = await open(sys);
    let reset = 0;
    let turnedAway = 0;
    const recoverMs: number[] = [];
    for (let i = 0; i < cfg.drops; i++) {
      const mode = DROP_MODES[i % DROP_MODES.length];
      const mark = await sys.snapshot();
      const drops = await Promise.all(
        sys.proxyList.map((p) => p.request<{ reset: number; turnedAway: number }>('drop', { ms: cfg.dropMs, mode }, cfg.dropMs + 60_000)),
      );
      const endedAt = nowUs();
      const open = drops.reduce((n, d) => n + d.reset, 0);
      reset += open;
      turnedAway += drops.reduce((n, d) => n + d.turnedAway, 0);
      const limitMs = 30_000 + open * 10;
      const { now, ok } = await back(sys, mark, open, limitMs);
      if (!ok) notes.push(`drop ${i + 1}: ${now.clients.down} sockets still away ${limitMs / 1000} s after it`);
      recoverMs.push(now.clients.lastRecoveredUs > endedAt ? (now.clients.lastRecoveredUs - endedAt) / 1000 : 0);
      log(
        `  network-drops: drop ${i + 1} (${mode}, ${cfg.dropMs} ms): ${open} connections reset; every socket back ${(recoverMs[i] / 1000).toFixed(2)} s after it ended`,
      );
      await sleep(2_000);
    }
    const { after, hists } = await close(sys);
    return result(
      'network-drops',
      [
        ['drops', cfg.drops, 0],
        ['connections reset by the drops', reset, 0],
        ['connection attempts turned away while down', turnedAway, 0],
        ['drop ended → last socket back, slowest drop, s', Math.max(...recoverMs) / 1000, 2],
        ...reconnectFigures(sys.side === 'full', before, after, hists),
      ],
      before,
      after,
      hists,
      sys.side === 'full' ? notes : [...notes, BASELINE_NO_REPLAY],
    );
  },
};

// ---------------------------------------------------------------------------------------
// Redis.

async function persistenceIdle(sys: LoadSystem): Promise<boolean> {
  const info = await sys.redis.info('persistence');
  return /^aof_enabled:1/m.test(info) && /^aof_rewrite_in_progress:0/m.test(info) && /^aof_rewrite_scheduled:0/m.test(info);
}

/**
 * redis-restart: Redis with an append-only file (turned on now, fsync every second) gets
 * SIGTERM and starts again on the same port with its data. The full path starts a new epoch
 * on every stream (seqs go on after the surviving head): each subscription meets it on the
 * wire and asks for a snapshot, or resubscribes into one; every client must end on the new
 * epoch at the last published seq. The baseline's adapter resubscribes by itself; what was
 * published meanwhile is lost to its sockets.
 */
const redisRestart: Drill = {
  name: 'redis-restart',
  describe: () =>
    'Redis (append-only file, fsync every second, switched on for this drill) restarted with SIGTERM on the same port, keeping its data; full path: a new epoch on every stream, each subscription takes a snapshot of it and must end at the last published seq; baseline: the sharded adapter resubscribes (ioredis), nothing replays.',
  async run({ sys, cfg, log }) {
    const notes: string[] = [];
    await sys.redis.config('SET', 'appendfsync', 'everysec');
    await sys.redis.config('SET', 'appendonly', 'yes');
    for (const started = Date.now(); !(await persistenceIdle(sys)); ) {
      if (Date.now() - started > 60_000) throw new Error('redis-restart: the append-only file was not written within 60 s');
      await sleep(200);
    }
    const before = await open(sys);
    const gateway = sys.side === 'full';
    log(`  redis-restart: SIGTERM redis (pid ${/^process_id:(\d+)/m.exec(await sys.redis.info('server'))?.[1]})`);
    const stoppedAt = nowUs();
    await sys.restartRedis();
    const readyAt = nowUs();
    await sys.redis.config('SET', 'appendfsync', 'everysec');
    log(`  redis-restart: ready again after ${((readyAt - stoppedAt) / 1e6).toFixed(2)} s`);

    // Deliveries flowing again: a half second with at least half the offered deliveries.
    const limitMs = 60_000 + cfg.sockets * 10;
    let flowingAt = Number.NaN;
    let onNewEpochAt = Number.NaN;
    let last = await sys.snapshot();
    for (const started = Date.now(); Date.now() - started < limitMs; ) {
      await sleep(500);
      const now = await sys.snapshot();
      const rate = (now.clients.received - last.clients.received) / ((now.atUs - last.atUs) / 1e6);
      if (Number.isNaN(flowingAt) && rate >= offeredDeliveries(cfg) / 2) flowingAt = now.atUs;
      // Every stream a client process watches has a new epoch, and every subscription is on it.
      if (gateway && Number.isNaN(onNewEpochAt) && now.clients.epochs >= 2 * before.clients.epochs && now.clients.offEpoch === 0 && now.clients.down === 0)
        onNewEpochAt = now.atUs;
      last = now;
      if (!Number.isNaN(flowingAt) && (!gateway || !Number.isNaN(onNewEpochAt))) break;
    }
    if (Number.isNaN(flowingAt)) notes.push(`deliveries not back to half the offered rate within ${limitMs / 1000} s`);
    if (gateway && Number.isNaN(onNewEpochAt)) notes.push(`${last.clients.offEpoch} subscriptions not on a new epoch within ${limitMs / 1000} s`);
    log(
      `  redis-restart: deliveries flowing ${((flowingAt - stoppedAt) / 1e6).toFixed(2)} s after the SIGTERM` +
        (gateway ? `, every subscription on the new epoch after ${((onNewEpochAt - stoppedAt) / 1e6).toFixed(2)} s` : ''),
    );
    const { after, hists } = await close(sys);
    const epochChanges = delta(before, after, 'epochChanges');
    const publishErrors = after.publishErrors - before.publishErrors;
    return result(
      'redis-restart',
      [
        ['SIGTERM → Redis ready again (its data loaded), s', (readyAt - stoppedAt) / 1e6, 2],
        ['SIGTERM → deliveries flowing again, s', (flowingAt - stoppedAt) / 1e6, 2],
        ['SIGTERM → every subscription on the new epoch, s', gateway ? (onNewEpochAt - stoppedAt) / 1e6 : Number.NaN, 2],
        ['subscriptions that met the new epoch (each then takes a snapshot)', gateway ? epochChanges : Number.NaN, 0],
        ['snapshots taken (new epoch, or a resubscribe from the old one)', gateway ? delta(before, after, 'snapshotResyncs') : Number.NaN, 0],
        ['publishes that failed while Redis was away', publishErrors, 0],
        ['handshakes or subscribes answered UNAVAILABLE / TIMEOUT (went elsewhere or reconnected, and resumed)', delta(before, after, 'unavailable'), 0],
        ['connections lost', delta(before, after, 'unexpectedCloses'), 0],
      ],
      before,
      after,
      hists,
      gateway ? notes : [...notes, 'no epochs or snapshots (n/a); events published while its pods were resubscribing are counted lost'],
      { epochChanges, publishErrors },
    );
  },
};

export const DRILLS: Record<string, Drill> = Object.fromEntries(
  [podKill, rollingRestartDrill, jitter, networkDrops, redisRestart].map((drill) => [drill.name, drill]),
);
