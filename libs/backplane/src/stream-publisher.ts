import { randomUUID } from 'node:crypto';
import type { EventDraft, StreamName } from '@app/protocol';
import { producerKey, streamChannel, streamKeys, streamSlot } from './keys';
import { ProducerFencedError, producerIds, type ProducerStamp, singleEvent } from './producers';
import type { RetentionPolicy } from './retention';
import { type RedisClient, runScript } from './scripts';
import { StreamHistory } from './stream-history';

export interface PublishedEvent {
  stream: StreamName;
  seq: number;
  epoch: string;
  id: string;
  ts: number;
  /**
   * True when the event's producer stamp had already published (see producers.ts): nothing
   * was sent, and this is the producer's newest answer (for a producer of one event, an
   * idempotency key, the first answer).
   */
  duplicate: boolean;
}

export interface PublishOptions {
  /** Publishes the event once whatever retries happen (see producers.ts). */
  producer?: ProducerStamp;
  /**
   * Shorthand for a producer of this one event in the system's namespace
   * (`producerIds.once`): a retry returns the first answer instead of publishing twice.
   */
  idempotencyKey?: string;
  /** How long the producer's fence lives on the stream, seconds (default one day). */
  idempotencyTtlSeconds?: number;
}

/** How long the compaction lock lives if its holder dies before writing the checkpoint. */
const COMPACTION_LOCK_MS = 30_000;
/** After another process was found folding a stream, leave it alone this long. */
const COMPACTION_BACKOFF_MS = 1_000;
const DEFAULT_PRODUCER_TTL_S = 24 * 60 * 60;
/** History is trimmed when a stream's seq passes a multiple of this (age: up to 128 events each time). */
const DEFAULT_TRIM_EVERY = 16;
/**
 * One script call carries at most this many events / bytes of envelope: a script blocks
 * Redis while it runs (about 10 µs per event of a stream here), so a call stays around a
 * millisecond.
 */
const MAX_BATCH_EVENTS = 128;
const MAX_BATCH_BYTES = 512 * 1024;
/**
 * Calls in flight per script target at most. A second one leaves only with a batch of
 * OVERLAP_BATCH_EVENTS or a full one: below that, what queues meanwhile waits and joins the
 * next call (fewer, fuller calls); above it, calls overlap, so the publisher's side and Redis
 * work at the same time and a busy publisher does not fall behind. Calls in flight
 * carry disjoint streams — a stream has one call in flight at most — so each stream's events
 * get their seqs in publish order whatever happens to a call on the way (a resend after a
 * reconnect, a NOSCRIPT retry, a cluster redirection).
 */
const MAX_IN_FLIGHT = 4;
/** Past this many events per call, a fuller call saves little Redis CPU per event (bench/redis-cpu.ts). */
const OVERLAP_BATCH_EVENTS = 32;
/** How many queued streams a batch is looked for in (past the streams in flight). */
const MAX_SCAN = 8 * MAX_BATCH_EVENTS;

export interface PublisherOptions {
  /**
   * How long the first publish to an idle script target waits for others to join its call,
   * in ms (the call leaves earlier once 32 events queued). With 0 it leaves at the end of the
   * current event-loop turn (`setImmediate`), so publishes issued in one turn — the same
   * tick, or I/O callbacks handled together — share it. A few ms make calls carry several
   * events at rates of a few thousand events/s (less Redis CPU per event), at the price of as
   * much latency on each publish that finds no call in flight. Under load it matters little:
   * what queues while a call is in flight goes as the next call, at once.
   * @default 0
   */
  lingerMs?: number;
}

interface Queued {
  id: string;
  /** `"id":…,"type":…,"payload":…}`: the envelope after its seq, epoch and ts. */
  tail: string;
  stamp?: ProducerStamp;
  stampTtlSeconds: number;
  resolve(event: PublishedEvent): void;
  reject(error: unknown): void;
}

/** Publishes queued for one script target (all streams of one Redis, or of one cluster slot). */
interface Target {
  /**
   * Queued events per stream, streams in the order of their oldest queued event: a call takes
   * whole streams in that order, so under load a stream's queued events share one call.
   */
  queued: Map<StreamName, Queued[]>;
  /** Events queued. */
  size: number;
  inFlight: number;
  /** Streams in a call in flight: their queued events wait for it. */
  busy: Set<StreamName>;
}

/** A stream's step failed inside a call that carried other streams too. */
export class StreamPublishError extends Error {
  override readonly name = 'StreamPublishError';
  constructor(
    readonly stream: StreamName,
    message: string,
  ) {
    super(`publish to ${stream} failed: ${message}`);
  }
}

/**
 * Publishes events into streams: workers and the HTTP publish API use this one class. One
 * script call (seq, history append, trim, SPUBLISH per stream) carries the events queued for
 * a **script target** — every stream, on a single Redis; the streams of one hash slot, on a
 * Redis Cluster, where a script may only touch keys of one slot. A publisher keeps one call in
 * flight per target (more only while full batches wait): publishes issued in the same
 * event-loop turn, or while a call is in flight, queue and go together as one call — each
 * still gets its own seq and answer, and each stream's events keep the order `publish` was
 * called in. So a load spread over many streams, one event each, still shares the per-call
 * costs (the round trip, the clock, the epoch fence). A publish that makes a checkpoint due
 * folds it in the background.
 */
export class StreamPublisher {
  private readonly history: StreamHistory;
  private readonly compactions = new Set<Promise<unknown>>();
  private readonly compacting = new Set<StreamName>();
  /** Streams another process was folding: not before this time (ms). */
  private readonly compactionBackoff = new Map<StreamName, number>();
  /** Script targets with publishes queued or a script call in flight. */
  private readonly targets = new Map<number, Target>();
  private readonly lingerMs: number;
  private readonly cluster: boolean;

  constructor(
    private readonly redis: RedisClient,
    private readonly retention: RetentionPolicy,
    private readonly onBackgroundError: (error: unknown, stream: StreamName) => void = () => undefined,
    options: PublisherOptions = {},
  ) {
    this.history = new StreamHistory(redis, retention);
    this.lingerMs = options.lingerMs ?? 0;
    this.cluster = redis.isCluster;
  }

  publish(stream: StreamName, draft: EventDraft, options: PublishOptions = {}): Promise<PublishedEvent> {
    const { producer } = options;
    if (producer && options.idempotencyKey !== undefined) return Promise.reject(new Error('a publish takes a producer stamp or an idempotency key, not both'));
    if (producer && !(Number.isSafeInteger(producer.epoch) && producer.epoch >= 0 && Number.isSafeInteger(producer.seq) && producer.seq >= 1)) {
      return Promise.reject(new Error(`producer ${producer.id}: epoch must be an integer ≥ 0 and seq an integer ≥ 1`));
    }
    return new Promise<PublishedEvent>((resolve, reject) => {
      const id = randomUUID();
      const item: Queued = {
        id,
        // The caller's JSON, never re-encoded by Redis' cjson (which turns `[]` into `{}`).
        tail: `"id":"${id}","type":${JSON.stringify(draft.type)},"payload":${JSON.stringify(draft.payload)}}`,
        stamp: options.producer ?? (options.idempotencyKey !== undefined ? singleEvent(producerIds.once(options.idempotencyKey)) : undefined),
        stampTtlSeconds: options.idempotencyTtlSeconds ?? DEFAULT_PRODUCER_TTL_S,
        resolve,
        reject,
      };
      // On a cluster one call may only touch one slot; one Redis takes every stream at once.
      const key = this.cluster ? streamSlot(stream) : 0;
      const target = this.targets.get(key);
      if (target) {
        const list = target.queued.get(stream);
        if (list) list.push(item);
        else target.queued.set(stream, [item]);
        target.size++;
        // A batch worth a call of its own need not wait for the call in flight, nor the linger
        // (the end of the turn, yes: the turn's other publishes join it).
        if (target.size === OVERLAP_BATCH_EVENTS) setImmediate(() => this.targets.get(key) === target && this.flush(key));
        return;
      }
      const created: Target = { queued: new Map([[stream, [item]]]), size: 1, inFlight: 0, busy: new Set() };
      this.targets.set(key, created);
      // (Unless that record was done with meanwhile and another took its place.)
      const flush = () => this.targets.get(key) === created && this.flush(key);
      if (this.lingerMs > 0) setTimeout(flush, this.lingerMs);
      else setImmediate(flush);
    });
  }

  /**
   * Claims a producer's epoch on a stream before it publishes: from then on its older epochs
   * are refused there (ProducerFencedError), whatever this one goes on to publish. Rejects
   * with ProducerFencedError if a newer epoch already holds the stream.
   */
  async fence(stream: StreamName, producerId: string, epoch: number, ttlSeconds = DEFAULT_PRODUCER_TTL_S): Promise<void> {
    const held = Number(await runScript(this.redis, 'rtProducerFenceV1', [producerKey(stream, producerId)], [epoch, ttlSeconds]));
    if (held > epoch) throw new ProducerFencedError(producerId, epoch, held);
  }

  /** Resolves when background compactions have settled (call before closing the connection). */
  async drain(): Promise<void> {
    while (this.compactions.size > 0) await Promise.allSettled([...this.compactions]);
  }

  /**
   * Sends what queued for a target as script calls of up to a batch's limits: one when none
   * is in flight, more while batches of OVERLAP_BATCH_EVENTS wait (up to MAX_IN_FLIGHT). Runs
   * again as each call returns, until nothing is left.
   */
  private flush(key: number): void {
    const target = this.targets.get(key);
    if (!target) return;
    while (target.size > 0 && target.inFlight < MAX_IN_FLIGHT) {
      const { picked, events, full } = pickBatch(target);
      if (events === 0 || (target.inFlight > 0 && !full && events < OVERLAP_BATCH_EVENTS)) break;
      this.send(key, target, takeBatch(target, picked, events));
    }
    if (target.size === 0 && target.inFlight === 0) this.targets.delete(key);
  }

  private send(key: number, target: Target, batch: Batch): void {
    target.inFlight++;
    for (const [stream] of batch) target.busy.add(stream);
    this.call(batch)
      .then(
        (streams) => {
          for (const { stream, events, error, checkpointSeq } of streams) {
            if (error) {
              events.forEach((item) => item.reject(error));
              continue;
            }
            let newest = 0;
            for (const { item, event } of events) {
              if (event instanceof Error) {
                item.reject(event);
                continue;
              }
              item.resolve(event);
              if (!event.duplicate) newest = Math.max(newest, event.seq);
            }
            if (newest > 0) this.maybeCompact(stream, newest, checkpointSeq);
          }
        },
        (error: unknown) => batch.forEach(([, items]) => items.forEach((item) => item.reject(error))),
      )
      .finally(() => {
        target.inFlight--;
        for (const [stream] of batch) target.busy.delete(stream);
        this.flush(key);
      });
  }

  private async call(batch: Batch): Promise<StreamOutcome[]> {
    const keys: string[] = [];
    const streamArgs: Array<string | number> = [];
    const eventArgs: string[] = [];
    /** Producer key → its number among the call's producer keys (1-based). */
    const producers = new Map<string, number>();
    const stampArgs: Array<string | number> = [];
    let stamped = 0;
    let index = 0;
    for (const [stream, items] of batch) {
      const k = streamKeys(stream);
      keys.push(k.meta, k.history, k.checkpoint);
      streamArgs.push(`{"v":1,"stream":${JSON.stringify(stream)},"seq":`, streamChannel(stream), items.length);
      for (const item of items) {
        if (item.stamp) {
          const key = producerKey(stream, item.stamp.id);
          let number = producers.get(key);
          if (number === undefined) producers.set(key, (number = producers.size + 1));
          stampArgs.push(index, number, item.stamp.epoch, item.stamp.seq, item.stampTtlSeconds);
          stamped++;
        }
        eventArgs.push(item.id, item.tail);
        index++;
      }
    }
    const reply = (await runScript(
      this.redis,
      'rtPublishV5',
      [...keys, ...producers.keys()],
      [
        batch.length,
        stamped,
        this.retention.maxEvents,
        this.retention.maxAgeMs,
        this.retention.idleTtlSeconds,
        this.retention.trimEvery ?? DEFAULT_TRIM_EVERY,
        ...streamArgs,
        ...eventArgs,
        ...stampArgs,
      ],
    )) as [number, ...Array<string | number | null>];
    const ts = Number(reply[0]);
    const answers = reply.slice(1 + 2 * batch.length);
    const outcomes: StreamOutcome[] = [];
    let at = 0;
    let s = 0;
    for (const [stream, items] of batch) {
      const epoch = reply[1 + 2 * s];
      const second = reply[2 + 2 * s];
      s++;
      const mine = answers.slice(at, at + items.length);
      at += items.length;
      if (typeof epoch !== 'string') {
        outcomes.push({ stream, events: items, error: new StreamPublishError(stream, String(second)), checkpointSeq: 0 });
        continue;
      }
      const events = items.map((item, i) => ({ item, event: answerOf(stream, epoch, ts, item, mine[i]) }));
      outcomes.push({ stream, events, checkpointSeq: Number(second) });
    }
    return outcomes;
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

/** A call's events: per stream, its events in publish order. */
type Batch = Array<[StreamName, Queued[]]>;

/**
 * The next batch: whole streams in queue order, skipping streams with a call in flight, up to
 * the limits (the last stream taken may give only the first of its events). `full`: a limit
 * was reached, so waiting would not make the batch larger.
 */
function pickBatch(target: Target): { picked: Array<[StreamName, number]>; events: number; full: boolean } {
  const picked: Array<[StreamName, number]> = [];
  let events = 0;
  let bytes = 0;
  let scanned = 0;
  for (const [stream, items] of target.queued) {
    if (++scanned > MAX_SCAN) break;
    if (target.busy.has(stream)) continue;
    let take = 0;
    for (; take < items.length; take++) {
      const full = events === MAX_BATCH_EVENTS || (events > 0 && bytes + items[take].tail.length > MAX_BATCH_BYTES);
      if (full) {
        if (take > 0) picked.push([stream, take]);
        return { picked, events, full };
      }
      events++;
      bytes += items[take].tail.length;
    }
    picked.push([stream, take]);
  }
  return { picked, events, full: events === MAX_BATCH_EVENTS };
}

/** Takes the picked events off the queue (each stream's first `count`). */
function takeBatch(target: Target, picked: Array<[StreamName, number]>, events: number): Batch {
  const batch: Batch = [];
  for (const [stream, count] of picked) {
    const items = target.queued.get(stream) as Queued[];
    if (count === items.length) {
      target.queued.delete(stream);
      batch.push([stream, items]);
    } else {
      batch.push([stream, items.splice(0, count)]);
    }
  }
  target.size -= events;
  return batch;
}

type StreamOutcome = { stream: StreamName; checkpointSeq: number } & (
  | { events: Array<{ item: Queued; event: PublishedEvent | ProducerFencedError }>; error?: undefined }
  | { events: Queued[]; error: StreamPublishError }
);

/**
 * One event's answer: its seq; or, for a duplicate of its producer stamp, the producer's
 * newest answer (a JSON string); or the refusal of a fenced producer (`!fenced:<epoch>`).
 */
function answerOf(
  stream: StreamName,
  epoch: string,
  ts: number,
  item: Queued,
  answer: string | number | null | undefined,
): PublishedEvent | ProducerFencedError {
  if (typeof answer === 'string' && answer.startsWith('!fenced:')) {
    const stamp = item.stamp as ProducerStamp;
    return new ProducerFencedError(stamp.id, stamp.epoch, Number(answer.slice('!fenced:'.length)));
  }
  if (typeof answer === 'string') {
    const first = JSON.parse(answer) as { seq: number; epoch: string; id: string; ts: number };
    return { stream, seq: Number(first.seq), epoch: first.epoch, id: first.id, ts: Number(first.ts), duplicate: true };
  }
  return { stream, seq: Number(answer), epoch, id: item.id, ts, duplicate: false };
}
