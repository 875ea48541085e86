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
const DEFAULT_IDEMPOTENCY_TTL_S = 24 * 60 * 60;
/** Age retention looks at the oldest event every this many publishes (up to 128 trimmed each time). */
const DEFAULT_AGE_CHECK_EVERY = 16;

/**
 * Publishes events into streams: workers and the HTTP publish API use this one class. Each
 * publish is one Lua call (seq, history append, trim, SPUBLISH); a publish that makes a
 * checkpoint due folds it in the background.
 */
export class StreamPublisher {
  private readonly history: StreamHistory;
  private readonly compactions = new Set<Promise<unknown>>();

  constructor(
    private readonly redis: RedisClient,
    private readonly retention: RetentionPolicy,
    private readonly onBackgroundError: (error: unknown, stream: StreamName) => void = () => undefined,
  ) {
    this.history = new StreamHistory(redis, retention);
  }

  async publish(stream: StreamName, draft: EventDraft, options: PublishOptions = {}): Promise<PublishedEvent> {
    const keys = streamKeys(stream);
    const eventId = randomUUID();
    const idempotent = options.idempotencyKey !== undefined;
    const reply = (await runScript(
      this.redis,
      'rtPublishV1',
      [keys.meta, keys.history, keys.checkpoint, keys.compactLock, publishIdempotencyKey(stream, options.idempotencyKey ?? '-')],
      [
        stream,
        streamChannel(stream),
        // A new stream's epoch is named after its first event: unique, and one UUID per publish.
        eventId,
        eventId,
        draft.type,
        JSON.stringify(draft.payload),
        this.retention.maxEvents,
        this.retention.maxAgeMs,
        this.retention.idleTtlSeconds,
        this.retention.checkpointEvery,
        idempotent ? (options.idempotencyTtlSeconds ?? DEFAULT_IDEMPOTENCY_TTL_S) : 0,
        COMPACTION_LOCK_MS,
        this.retention.ageCheckEvery ?? DEFAULT_AGE_CHECK_EVERY,
      ],
    )) as [number, string, string, number, number, number];
    const [seq, epoch, id, ts, checkpointDue, duplicate] = reply;
    if (checkpointDue === 1) this.compactInBackground(stream);
    return { stream, seq: Number(seq), epoch, id, ts: Number(ts), duplicate: duplicate === 1 };
  }

  /** Resolves when background compactions have settled (call before closing the connection). */
  async drain(): Promise<void> {
    while (this.compactions.size > 0) await Promise.allSettled([...this.compactions]);
  }

  private compactInBackground(stream: StreamName): void {
    const task = this.history
      .compact(stream)
      .catch((error: unknown) => this.onBackgroundError(error, stream))
      .finally(() => this.compactions.delete(task));
    this.compactions.add(task);
  }
}
