/*
 * Token coalescing for one run's events (PROTOCOL.md §9, last point).
 *
 * Providers stream 50–150 tokens/s per run. One stream event per token costs one step of the
 * publish script, one history entry, one channel message and one frame per dashboard, so with
 * many runs Redis is the first thing to saturate, and a reader gains nothing from a frame per
 * token. A coalescer sits between a run and the function that publishes its
 * events and merges consecutive `message` deltas (`delta: true`) of one message into one
 * delta per window.
 *
 * Use one coalescer per run, built with the function that publishes one event
 * (`EventSink.coalescer((event) => sink.bot(botId, event, options))` gives the configured
 * window, `MESSAGE_COALESCE_MS`), and send all of the run's events through it, in order:
 *
 * - `publish(event)` — a `message` delta is buffered and the promise settles at once; it
 *   goes out `windowMs` after the first chunk of the buffer, carrying every chunk of the same
 *   message that came meanwhile (or once `maxChars` have gathered). A chunk that comes more
 *   than `windowMs` after the one before it starts a delta of its own: only a fast stream is
 *   merged, and text a model streamed visibly apart stays apart (the demo model's chunks,
 *   DEMO_CHUNK_DELAY_MS apart, stay ≥ 3 deltas however slow Redis is, as long as that pause
 *   is longer than the window, as by default). Any other event — a delta
 *   of another message (or of the same one with another role or `replyToId`), a whole
 *   `message`, `tool_start`, `usage`, `done`, … — first sends the buffered delta, then
 *   itself, and its promise settles once it is published, or rejects with the publish
 *   function's error.
 * - `flush()` — sends what is buffered and waits until every publish started has settled.
 *   Call it when a run stops without a last event of its own (a hand-back), before the job
 *   is given up, so nothing of it can reach the stream after another worker's `done`.
 *
 * Guarantees: events reach the publish function one at a time, in `publish` order (a delta
 * whose window ends while the publish ahead of it is in flight keeps gathering the chunks of a
 * fast stream until it leaves, so a slow Redis gets fewer, larger events, not a backlog); the deltas published
 * for a message concatenate to exactly the chunks handed over. A failed publish of a
 * buffered delta happened in the background: its error is thrown by the next `publish` or
 * `flush` (once), and nothing more of the run is published before that, so the stream holds
 * a prefix of the reply. The caller then ends the run (`error`, `done`), as it would after
 * any failed publish. With `windowMs` 0 nothing is buffered: every event is published as it
 * comes and its promise settles when it is out, exactly as without a coalescer.
 *
 *   const out = sink.coalescer((event) => sink.bot(botId, event));
 *   for await (const part of provider.turn(request)) {
 *     if (part.kind === 'text') await out.publish({ type: 'message', payload: { ...ids, messageId, role: 'assistant', content: part.text, delta: true } });
 *   }
 *   await out.publish({ type: 'usage', payload: … });   // sends the last delta first
 *   await out.publish({ type: 'done', payload: … });
 */
import type { BotEvent, BotEventPayloads } from '@app/protocol';

/** Publishes one event of the run (and rejects if it could not). */
export type PublishEvent = (event: BotEvent) => Promise<unknown>;

export interface DeltaCoalescerOptions {
  /** How long the first chunk of a merged delta waits for more, in ms; 0 publishes each chunk as its own event. */
  windowMs: number;
  /**
   * A merged delta leaves early once its content reaches this many characters, so a burst
   * (a provider that sends a cached answer at once) still travels in frames of a sane size.
   * @default 16384
   */
  maxChars?: number;
}

type MessagePayload = BotEventPayloads['message'];

/** A delta being gathered: the first chunk's payload and every chunk's text. */
interface Gathered {
  payload: MessagePayload;
  chunks: string[];
  chars: number;
  /** When its last chunk came (performance.now()): a chunk later than a window after it starts a new delta. */
  lastChunkAt: number;
  /** Its publish is queued; chunks of its message still join it until it leaves. */
  queued: boolean;
}

const DEFAULT_MAX_CHARS = 16_384;

/** One run's coalescer: merges its consecutive `message` deltas, keeps every event in order (see the top of this file). */
export class DeltaCoalescer {
  private gathering: Gathered | null = null;
  /** The window of `gathering`, while it is not queued. */
  private timer: NodeJS.Timeout | null = null;
  /** Settles when the last publish queued has settled; never rejects. */
  private tail: Promise<void> = Promise.resolve();
  /** A background publish that failed and that the caller has not been told about yet. */
  private failure: { error: unknown } | null = null;
  private readonly windowMs: number;
  private readonly maxChars: number;

  constructor(
    private readonly send: PublishEvent,
    options: DeltaCoalescerOptions,
  ) {
    if (!Number.isInteger(options.windowMs) || options.windowMs < 0) throw new RangeError(`windowMs must be an integer ≥ 0, not ${options.windowMs}`);
    this.windowMs = options.windowMs;
    this.maxChars = options.maxChars ?? DEFAULT_MAX_CHARS;
  }

  async publish(event: BotEvent): Promise<void> {
    this.reportFailure();
    if (this.windowMs > 0 && event.type === 'message' && event.payload.delta) return this.gather(event.payload);
    this.seal();
    await this.afterQueued(async () => {
      // A buffered delta ahead of this event failed: the caller hears of it instead.
      this.reportFailure();
      await this.send(event);
    });
  }

  async flush(): Promise<void> {
    this.seal();
    await this.tail;
    this.reportFailure();
  }

  private gather(payload: MessagePayload): void {
    const current = this.gathering;
    const now = performance.now();
    if (current && sameMessage(current.payload, payload) && now - current.lastChunkAt <= this.windowMs) {
      current.chunks.push(payload.content);
      current.chars += payload.content.length;
      current.lastChunkAt = now;
    } else {
      this.seal();
      const gathered: Gathered = { payload, chunks: [payload.content], chars: payload.content.length, lastChunkAt: now, queued: false };
      this.gathering = gathered;
      this.timer = setTimeout(() => this.queue(gathered), this.windowMs);
    }
    if ((this.gathering as Gathered).chars >= this.maxChars) this.seal();
  }

  /** Nothing more joins the delta being gathered; its publish is queued if it is not yet. */
  private seal(): void {
    const gathered = this.gathering;
    if (!gathered) return;
    this.gathering = null;
    this.queue(gathered);
  }

  private queue(gathered: Gathered): void {
    if (gathered.queued) return;
    gathered.queued = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.tail = this.tail.then(async () => {
      if (this.gathering === gathered) this.gathering = null;
      // After a failure nothing more goes out until the caller knows: the stream keeps a prefix of the reply.
      if (this.failure) return;
      try {
        await this.send({ type: 'message', payload: { ...gathered.payload, content: gathered.chunks.join('') } });
      } catch (error) {
        this.failure = { error };
      }
    });
  }

  /** Runs `task` once every publish queued before it has settled; its outcome is the caller's. */
  private afterQueued(task: () => Promise<void>): Promise<void> {
    const run = this.tail.then(task);
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private reportFailure(): void {
    const failure = this.failure;
    if (!failure) return;
    this.failure = null;
    throw failure.error;
  }
}

/** Chunks merge only when the merged delta says of each of them what it said alone. */
function sameMessage(a: MessagePayload, b: MessagePayload): boolean {
  return a.messageId === b.messageId && a.runId === b.runId && a.sessionId === b.sessionId && a.role === b.role && a.replyToId === b.replyToId;
}
