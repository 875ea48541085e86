import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Measurement helpers of the load kit: a mergeable latency histogram (typed array, no
 * per-sample allocation), an allocation-free integer reader for raw frames, and CPU /
 * memory readings of other processes from /proc.
 */

/** 10 µs buckets up to 100 ms, then 1 ms buckets up to 60.1 s, then one overflow bucket. */
export const HIST_BUCKETS = 70_001;
const FINE = 10_000;

export function bucketOf(us: number): number {
  if (!(us > 0)) return 0;
  if (us < 100_000) return Math.floor(us / 10);
  const ms = Math.floor((us - 100_000) / 1000);
  return ms < 60_000 ? FINE + ms : HIST_BUCKETS - 1;
}

/** The upper edge of a bucket, µs (what a percentile reports: never optimistic). */
export function bucketTopUs(bucket: number): number {
  if (bucket < FINE) return (bucket + 1) * 10;
  if (bucket < HIST_BUCKETS - 1) return 100_000 + (bucket - FINE + 1) * 1000;
  return Number.POSITIVE_INFINITY;
}

export class Histogram {
  counts = new Uint32Array(HIST_BUCKETS);
  total = 0;
  maxUs = 0;

  record(us: number): void {
    this.counts[bucketOf(us)]++;
    this.total++;
    if (us > this.maxUs) this.maxUs = us;
  }

  merge(other: { counts: Uint32Array; total: number; maxUs: number }): void {
    for (let i = 0; i < HIST_BUCKETS; i++) this.counts[i] += other.counts[i];
    this.total += other.total;
    this.maxUs = Math.max(this.maxUs, other.maxUs);
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.maxUs = 0;
  }

  /** Nearest-rank percentile, µs (upper bucket edge, capped by the largest sample). */
  percentileUs(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < HIST_BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(bucketTopUs(i), this.maxUs);
    }
    return this.maxUs;
  }
}

/** Where the last {@link intAt} stopped reading. */
export let intEnd = 0;

/** Reads the unsigned decimal integer at `pos` of a frame, without allocating. */
export function intAt(frame: Buffer, pos: number): number {
  let value = 0;
  let i = pos;
  for (; i < frame.length; i++) {
    const c = frame[i];
    if (c < 48 || c > 57) break;
    value = value * 10 + (c - 48);
  }
  intEnd = i;
  return i === pos ? -1 : value;
}

let clockTicks = 0;

/** User + system CPU time of any process so far, µs (from /proc/<pid>/stat; 10 ms steps). */
export function procCpuUs(pid: number): number {
  if (!clockTicks) clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1e6) / clockTicks;
  } catch {
    return Number.NaN;
  }
}
