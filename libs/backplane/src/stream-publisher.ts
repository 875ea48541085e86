import { randomUUID } from 'node:crypto';
import type { EventDraft, StreamName } from '@app/protocol';
import { publishIdempotencyKey, streamChannel, streamKeys } from './keys';
import type { RetentionPolicy } from './retention';
import { type RedisClient, runScript } from './scripts';
import { StreamHistory } from './stream-history';

export interface PublishedEvent {
  stream: StreamName;
  seq: number;
  epoch: string;
  id: string;
  ts: number;
  /** True when an idempotency key had already published: this is the first answer again. */
  duplicate: boolean;
}

export interface PublishOptions {
  /** Makes a retry return the first answer instead of publishing twice. */
  idempotencyKey?: string;
  idempotencyTtlSeconds?: number;
}

/** How long the compaction lock lives if its holder dies before writing the checkpoint. */
const COMPACTION_LOCK_MS = 30_000;
/** After another process was found folding a stream, leave it alone this long. */
const COMPACTION_BACKOFF_MS = 1_000;
const DEFAULT_IDEMPOTENCY_TTL_S = 24 * 60 * 60;
/** Age retention looks at the oldest event when the seq passes a multiple of this (up to 128 trimmed each time). */
const DEFAULT_AGE_CHECK_EVERY = 16;
/**
 * One script call carries at most this many events / bytes of envelope: a script blocks
 * Redis while it runs (about 3 µs per event here), so a batch stays well under a millisecond.
 */
const MAX_BATCH_EVENTS = 128;
const MAX_BATCH_BYTES = 512 * 1024;

interface Queued {
  id: string;
  /** `"id":…,"type":…,"payload":…}`: the envelope after its seq, epoch and ts. */
  tail: string;
  idempotencyKey?: string;
  idempotencyTtlSeconds: number;
  resolve(event: PublishedEvent): void;
  reject(error: unknown): void;
}

/**
 * Publishes events into streams: workers and the HTTP publish API use this one class. Each
 * script call (seq, history append, trim, SPUBLISH) carries the events of one stream, and a
 * publisher has at most one call in flight per stream: publishes issued in the same tick, or
 * while a call is in flight, queue and go together as one call with N events — each still
 * gets its own seq and answer, in the order `publish` was called. A publish that makes a
 * checkpoint due folds it in the background.
 */
export class StreamPublisher {
  private readonly history: StreamHistory;
  private readonly compactions = new Set<Promise<unknown>>();
  private readonly compacting = new Set<StreamName>();
  /** Streams another process was folding: not before this time (ms). */
  private readonly compactionBackoff = new Map<StreamName, number>();
  /** Streams with publishes queued or a script call in flight. */
  private readonly queues = new Map<StreamName, { queued: Queued[]; inFlight: boolean }>();

  constructor(
    private readonly redis: RedisClient,
    private readonly retention: RetentionPolicy,
    private readonly onBackgroundError: (error: unknown, stream: StreamName) => void = () => undefined,
  ) {
    this.history = new StreamHistory(redis, retention);
  }

  publish(stream: StreamName, draft: EventDraft, options: PublishOptions = {}): Promise<PublishedEvent> {
    return new Promise<PublishedEvent>((resolve, reject) => {
      const id = randomUUID();
      const item: Queued = {
        id,
        // The caller's JSON, never re-encoded by Redis' cjson (which turns `[]` into `{}`).
        tail: `"id":"${id}","type":${JSON.stringify(draft.type)},"payload":${JSON.stringify(draft.payload)}}`,
        idempotencyKey: options.idempotencyKey,
        idempotencyTtlSeconds: options.idempotencyKey !== undefined ? (options.idempotencyTtlSeconds ?? DEFAULT_IDEMPOTENCY_TTL_S) : 0,
        resolve,
        reject,
      };
      const queue = this.queues.get(stream);
      if (queue) {
        queue.queued.push(item);
        return;
      }
      // Sent after the current tick: the publishes a caller issues together go as one call.
      this.queues.set(stream, { queued: [item], inFlight: false });
      queueMicrotask(() => this.flush(stream));
    });
  }

  /** Resolves when background compactions have settled (call before closing the connection). */
  async drain(): Promise<void> {
    while (this.compactions.size > 0) await Promise.allSettled([...this.compactions]);
  }

  /** Sends what queued for `stream` (up to a batch's limits) as one script call; repeats until none is left. */
  private flush(stream: StreamName): void {
    const queue = this.queues.get(stream);
    if (!queue || queue.inFlight) return;
    const { queued } = queue;
    if (queued.length === 0) {
      this.queues.delete(stream);
      return;
    }
    let count = 1;
    let bytes = queued[0].tail.length;
    while (count < queued.length && count < MAX_BATCH_EVENTS && bytes + queued[count].tail.length <= MAX_BATCH_BYTES) {
      bytes += queued[count].tail.length;
      count++;
    }
    const batch = queued.splice(0, count);
    queue.inFlight = true;
    this.call(stream, batch)
      .then(
        ({ events, checkpointSeq }) => {
          events.forEach((event, i) => batch[i].resolve(event));
          const newest = Math.max(0, ...events.filter((e) => !e.duplicate).map((e) => e.seq));
          if (newest > 0) this.maybeCompact(stream, newest, checkpointSeq);
        },
        (error: unknown) => batch.forEach((item) => item.reject(error)),
      )
      .finally(() => {
        queue.inFlight = false;
        this.flush(stream);
      });
  }

  private async call(stream: StreamName, batch: Queued[]): Promise<{ events: PublishedEvent[]; checkpointSeq: number }> {
    const keys = streamKeys(stream);
    const idempotencyKeys: string[] = [];
    const idempotencyArgs: number[] = [];
    const eventArgs: string[] = [];
    batch.forEach((item, i) => {
      eventArgs.push(item.id, item.tail);
      if (item.idempotencyKey === undefined) return;
      idempotencyKeys.push(publishIdempotencyKey(stream, item.idempotencyKey));
      idempotencyArgs.push(i, item.idempotencyTtlSeconds);
    });
    const reply = (await runScript(
      this.redis,
      'rtPublishV2',
      [keys.meta, keys.history, keys.checkpoint, ...idempotencyKeys],
      [
        `{"v":1,"stream":${JSON.stringify(stream)},"seq":`,
        streamChannel(stream),
        // A new stream's (or new epoch's) name is its first event's id: unique, one UUID per publish.
        batch[0].id,
        this.retention.maxEvents,
        this.retention.maxAgeMs,
        this.retention.idleTtlSeconds,
        this.retention.ageCheckEvery ?? DEFAULT_AGE_CHECK_EVERY,
        batch.length,
        idempotencyKeys.length,
        ...eventArgs,
        ...idempotencyArgs,
      ],
    )) as [string, number, number, ...Array<number | string>];
    const [epoch, ts, checkpointSeq, ...answers] = reply;
    const events = answers.map((answer, i): PublishedEvent => {
      if (typeof answer === 'string') {
        const first = JSON.parse(answer) as { seq: number; epoch: string; id: string; ts: number };
        return { stream, seq: Number(first.seq), epoch: first.epoch, id: first.id, ts: Number(first.ts), duplicate: true };
      }
      return { stream, seq: Number(answer), epoch, id: batch[i].id, ts: Number(ts), duplicate: false };
    });
    return { events, checkpointSeq: Number(checkpointSeq) };
  }

  /**
   * The checkpoint decision, off the script: due once `checkpointEvery` events followed the
   * newest checkpoint. The fold runs in the background under a lock (SET NX), so one process
   * folds a stream at a time; `write_checkpoint` releases it.
   */
  private maybeCompact(stream: StreamName, seq: number, checkpointSeq: number): void {
    if (seq - checkpointSeq < this.retention.checkpointEvery || this.compacting.has(stream)) return;
    const backoff = this.compactionBackoff.get(stream);
    if (backoff !== undefined) {
      if (backoff > Date.now()) return;
      this.compactionBackoff.delete(stream);
    }
    this.compacting.add(stream);
    const task = this.redis
      .set(streamKeys(stream).compactLock, '1', 'PX', COMPACTION_LOCK_MS, 'NX')
      .then(async (locked) => {
        if (locked !== 'OK') {
          this.backOff(stream);
          return;
        }
        await this.history.compact(stream);
      })
      .catch((error: unknown) => this.onBackgroundError(error, stream))
      .finally(() => {
        this.compacting.delete(stream);
        this.compactions.delete(task);
      });
    this.compactions.add(task);
  }

  private backOff(stream: StreamName): void {
    const now = Date.now();
    if (this.compactionBackoff.size >= 1_000) {
      for (const [name, until] of this.compactionBackoff) if (until <= now) this.compactionBackoff.delete(name);
    }
    this.compactionBackoff.set(stream, now + COMPACTION_BACKOFF_MS);
  }
}
