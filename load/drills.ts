import { nowUs, sleep } from '../bench/common';
import type { LoadConfig } from './config';
import type { Histogram } from './stats';
import type { LoadSystem, Snapshot } from './system';

/**
 * Fault drills: phases that run while the steady load goes on. A drill does its damage,
 * waits for the system to recover, and reports what the clients saw during its window.
 * The driver runs `cfg.drills` in order after the steady phase; to add one (rolling
 * restart, connection jitter, a TCP proxy dropping packets, a Redis restart), add an entry
 * to DRILLS.
 */
export interface DrillContext {
  sys: LoadSystem;
  cfg: LoadConfig;
  log(line: string): void;
}

export interface DrillResult {
  name: string;
  /** Figures for the report: [label, value, digits]. */
  figures: Array<[string, number, number]>;
  /** Lost / duplicated deliveries seen by clients during the drill window. */
  lost: number;
  dup: number;
  /** The drill's window, for latency and error accounting. */
  before: Snapshot;
  after: Snapshot;
  latency: Histogram;
  notes: string[];
}

export interface Drill {
  name: string;
  describe(cfg: LoadConfig): string;
  run(ctx: DrillContext): Promise<DrillResult>;
}

/** After the recovery, the load goes on this long inside the drill window. */
const SETTLE_MS = 5_000;

/**
 * pod-kill: SIGKILL the pod holding the most sockets. Its clients see the connection drop,
 * reconnect to other pods after a random delay (up to reconnectJitterMs) and resubscribe
 * with sinceSeq/epoch/lastId; the replay must give back every event they missed. Recovery
 * time = kill → the last moved socket's resubscribe acknowledged.
 */
const podKill: Drill = {
  name: 'pod-kill',
  describe: (cfg) =>
    `SIGKILL the pod holding the most sockets (~${Math.round(cfg.sockets / cfg.pods).toLocaleString('en-US')}) mid-stream; clients reconnect to the other pods within ${cfg.reconnectJitterMs} ms (random) and resubscribe with sinceSeq/epoch/lastId.`,
  async run({ sys, log }) {
    const notes: string[] = [];
    await sys.histogram(true);
    const before = await sys.snapshot();
    const victim = before.clients.perPod.reduce((best, n, j) => (sys.pods[j].alive && n > before.clients.perPod[best] ? j : best), 0);
    const moved = before.clients.perPod[victim];
    log(`  pod-kill: SIGKILL ${sys.pods[victim].name} (pid ${sys.pods[victim].pid}) holding ${moved} sockets`);
    const killedAt = nowUs();
    await sys.pods[victim].kill();
    await sys.announcePods();

    // Recovered when every socket that lost its connection has resubscribed on another pod.
    // (Churn goes on: a socket it closed just before the kill comes back fresh, not counted.)
    const limitMs = 30_000 + moved * 10;
    let now: Snapshot = before;
    for (const started = Date.now(); Date.now() - started < limitMs; ) {
      await sleep(250);
      now = await sys.snapshot();
      const dropped = now.clients.unexpectedCloses - before.clients.unexpectedCloses;
      if (dropped > 0 && now.clients.down === 0 && (dropped >= moved || Date.now() - started > 5_000)) break;
    }
    const dropped = now.clients.unexpectedCloses - before.clients.unexpectedCloses;
    const recovered = now.clients.recovered - before.clients.recovered;
    const recoverMs = recovered > 0 ? (now.clients.lastRecoveredUs - killedAt) / 1000 : Number.NaN;
    if (now.clients.down > 0) notes.push(`${now.clients.down} sockets were still away after ${limitMs / 1000} s`);
    log(`  pod-kill: ${dropped} connections dropped, ${recovered} sockets resubscribed elsewhere; the last ${(recoverMs / 1000).toFixed(2)} s after the kill`);
    await sleep(SETTLE_MS);
    const after = await sys.snapshot();
    const latency = await sys.histogram(true);
    const d = (key: 'replayed' | 'snapshotResyncs' | 'resumes') => after.clients[key] - before.clients[key];
    return {
      name: 'pod-kill',
      figures: [
        ['sockets on the killed pod', moved, 0],
        ['connections dropped', dropped, 0],
        ['sockets back (resubscribed on another pod)', recovered, 0],
        ['time to recover: kill → last resubscribe acknowledged, s', recoverMs / 1000, 2],
        ['resubscribes (full path: sinceSeq/epoch/lastId; baseline: join again)', d('resumes'), 0],
        ['events replayed to them', d('replayed'), 0],
        ['resubscribes answered by a snapshot instead of a replay', d('snapshotResyncs'), 0],
      ],
      lost: after.clients.lost - before.clients.lost,
      dup: after.clients.dup - before.clients.dup,
      before,
      after,
      latency,
      notes,
    };
  },
};

export const DRILLS: Record<string, Drill> = { [podKill.name]: podKill };
