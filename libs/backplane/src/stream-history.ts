import { randomUUID } from 'node:crypto';
import { type Envelope, ErrorCode, foldEvents, initialState, isEnvelope, parseStream, ProtocolError, type StreamName, type StreamState } from '@app/protocol';
import { streamKeys } from './keys';
import type { RetentionPolicy } from './retention';
import { type RedisClient, runScript } from './scripts';

/** Where a subscriber stands after catching up: replay these events, or take this state. */
export type CatchUp =
  | { mode: 'replay'; epoch: string; seq: number; events: Envelope[] }
  | { mode: 'snapshot'; reason: SnapshotReason; epoch: string; seq: number; state: StreamState; tailLength: number };

export type SnapshotReason = 'requested' | 'epoch' | 'diverged' | 'trimmed' | 'too_far';

export interface ResumePoint {
  sinceSeq: number;
  epoch: string;
  lastId?: string;
}

export interface StreamHead {
  epoch: string;
  seq: number;
  /** The seq before the epoch's first event. */
  base: number;
}

const PROVISIONAL_TTL_S = 3600;

interface Checkpoint {
  seq: number;
  epoch: string;
  state: StreamState;
}

/**
 * Reads a stream's history: replays, snapshots (checkpoint + the events after it, folded
 * with the protocol's reducers) and the compaction that writes new checkpoints.
 */
export class StreamHistory {
  constructor(
    private readonly redis: RedisClient,
    readonly retention: RetentionPolicy,
  ) {}

  /** One atomic read: a replay after `resume` when history allows it, else a snapshot. */
  async catchUp(stream: StreamName, resume?: ResumePoint): Promise<CatchUp> {
    const keys = streamKeys(stream);
    const reply = (await runScript(
      this.redis,
      'rtCatchUpV2',
      [keys.meta, keys.history, keys.checkpoint],
      [
        randomUUID(),
        resume ? resume.sinceSeq : -1,
        resume?.epoch ?? '',
        resume?.lastId ?? '',
        this.retention.maxReplay,
        // A stream only subscribed to, never published to, should not linger for the idle TTL.
        Math.min(PROVISIONAL_TTL_S, this.retention.idleTtlSeconds || PROVISIONAL_TTL_S),
      ],
    )) as [string, string, string, number, string, number, ...string[]];
    const [mode, reason, epoch, head, checkpointJson, checkpointSeq, ...rawEvents] = reply;
    const events = rawEvents.map((raw) => decodeStored(stream, raw));
    const seq = Number(head);
    if (mode === 'replay') return { mode, epoch, seq, events };

    const state = this.fold(stream, checkpointJson, Number(checkpointSeq), events);
    return { mode: 'snapshot', reason: reason as SnapshotReason, epoch, seq, state, tailLength: events.length };
  }

  /**
   * Folds a new checkpoint at the stream's head, if another process has not already. Called
   * by publishers when their publishes made one due (they hold the compaction lock), and by
   * snapshot readers that had to fold a long tail.
   *
   * It reads with plain commands, not the catch-up script: the checkpoint and its seq together
   * (MULTI), then the events after it (XRANGE). Handing a few hundred history entries to Lua
   * and back cost more Redis CPU than all the publishes they folded. What moved meanwhile is
   * caught where it matters: only events contiguous from the checkpoint are folded, and
   * `write_checkpoint` refuses another epoch, a seq past the head (events a failover lost)
   * and anything not newer than the stored checkpoint.
   */
  async compact(stream: StreamName): Promise<boolean> {
    const keys = streamKeys(stream);
    const results = await this.redis.multi().hmget(keys.meta, 'epoch', 'checkpointSeq').get(keys.checkpoint).exec();
    if (!results) return false;
    const [[metaError, meta], [checkpointError, checkpointJson]] = results as [[Error | null, Array<string | null>], [Error | null, string | null]];
    if (metaError || checkpointError) throw metaError ?? checkpointError;
    const [epoch, storedSeq] = meta;
    if (!epoch) return false;
    const checkpointSeq = Number(storedSeq ?? 0);
    const entries = (await this.redis.xrange(keys.history, `${checkpointSeq + 1}-0`, '+')) as Array<[string, string[]]>;
    const tail: Envelope[] = [];
    for (const [, fields] of entries) {
      const event = decodeStored(stream, fields[5]);
      if (event.seq !== checkpointSeq + tail.length + 1) break;
      tail.push(event);
    }
    const last = tail.at(-1);
    if (!last) return false;
    const checkpoint: Checkpoint = { seq: last.seq, epoch, state: this.fold(stream, checkpointJson ?? '', checkpointSeq, tail) };
    const written = await runScript(
      this.redis,
      'rtWriteCheckpointV1',
      [keys.meta, keys.checkpoint, keys.compactLock],
      [epoch, last.seq, JSON.stringify(checkpoint)],
    );
    return written === 1;
  }

  /** Events `fromSeq..toSeq` still in history (fewer when trimmed), for a pod filling a gap. */
  async range(stream: StreamName, fromSeq: number, toSeq: number): Promise<Envelope[]> {
    const entries = (await this.redis.xrange(streamKeys(stream).history, `${fromSeq}-0`, `${toSeq}-0`)) as Array<[string, string[]]>;
    return entries.map(([, fields]) => decodeStored(stream, fields[5]));
  }

  /**
   * At most `count` events after `afterSeq`, and the head they were read with, in one atomic
   * step (MULTI: the keys share the stream's hash tag), for a reader paging through history.
   * `head` is null for a stream with no history; the events are those still held, so a first
   * seq other than `afterSeq + 1` means retention trimmed the ones before it.
   */
  async page(stream: StreamName, afterSeq: number, count: number): Promise<{ head: StreamHead | null; events: Envelope[] }> {
    const keys = streamKeys(stream);
    const results = await this.redis
      .multi()
      .hmget(keys.meta, 'epoch', 'seq', 'base')
      .xrange(keys.history, `${afterSeq + 1}-0`, '+', 'COUNT', count)
      .exec();
    if (!results) throw new ProtocolError(ErrorCode.UNAVAILABLE, `the history read of ${stream} was aborted`);
    const [[metaError, meta], [rangeError, entries]] = results as [[Error | null, Array<string | null>], [Error | null, Array<[string, string[]]>]];
    if (metaError || rangeError) throw metaError ?? rangeError;
    const [epoch, seq, base] = meta;
    return {
      head: epoch ? { epoch, seq: Number(seq ?? 0), base: Number(base ?? 0) } : null,
      events: entries.map(([, fields]) => decodeStored(stream, fields[5])),
    };
  }

  /**
   * The stream's epoch, head seq and the epoch's base (the seq before its first event: 0 for
   * a new stream, the surviving head when a failover or restart started the epoch), or null
   * for a stream with no history.
   */
  async head(stream: StreamName): Promise<StreamHead | null> {
    const [epoch, seq, base] = await this.redis.hmget(streamKeys(stream).meta, 'epoch', 'seq', 'base');
    return epoch ? { epoch, seq: Number(seq ?? 0), base: Number(base ?? 0) } : null;
  }

  private fold(stream: StreamName, checkpointJson: string, checkpointSeq: number, tail: Envelope[]): StreamState {
    const kind = parseStream(stream)?.kind;
    if (!kind) throw new ProtocolError(ErrorCode.VALIDATION_FAILED, `not a stream: ${stream}`);
    let base = initialState(kind);
    if (checkpointJson) {
      const checkpoint = JSON.parse(checkpointJson) as Checkpoint;
      // Read in the same atomic step as the tail after checkpointSeq. Its epoch may be an
      // earlier one: a failover or restart starts a new epoch that continues the surviving
      // history, checkpoint included (a lost stream deletes its checkpoint instead).
      if (checkpoint.seq !== checkpointSeq) throw new ProtocolError(ErrorCode.INTERNAL, `checkpoint of ${stream} is not at its recorded seq`);
      base = checkpoint.state as typeof base;
    }
    return foldEvents(kind, base, tail);
  }
}

/** Decodes an envelope read back from Redis; a malformed one is a server fault, not input. */
function decodeStored(stream: StreamName, raw: string): Envelope {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = undefined;
  }
  if (!isEnvelope(value) || value.stream !== stream) {
    throw new ProtocolError(ErrorCode.INTERNAL, `history of ${stream} holds a malformed event`);
  }
  return value;
}
