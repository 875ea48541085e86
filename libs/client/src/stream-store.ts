import {
  type Envelope,
  foldEvent,
  initialState,
  parseStream,
  type StreamKind,
  type StreamName,
  type StreamStateByKind,
  type SubscribeResult,
} from '@app/protocol';
import { TypedEmitter } from './emitter';

export type StoreStatus = 'subscribing' | 'live' | 'resyncing' | 'closed';
export type ResyncReason = 'gap' | 'epoch' | 'reconnect';

/** What the store asks of the client when its position can no longer be trusted. */
export type ResyncRequest = (store: StreamStore<StreamKind>, reason: ResyncReason) => void;

interface StoreEvents<K extends StreamKind> {
  /** The state changed: after a snapshot (`event` undefined) or after folding `event`. */
  change: (state: StreamStateByKind[K], event?: Envelope) => void;
}

/**
 * One stream as a dashboard sees it: its position (epoch, seq, lastId), and its state
 * folded with the protocol's reducers — the same code that makes the server's snapshots.
 * Duplicates are dropped; a gap or an epoch change asks for a resync (a resubscribe with
 * the position, answered by a replay or a snapshot). A new epoch may continue the seqs of
 * the previous one (after a Redis failover or restart) or start at 1 (a lost stream): either
 * way the store's position means nothing on it, and only a snapshot will do.
 */
export class StreamStore<K extends StreamKind = StreamKind> extends TypedEmitter<StoreEvents<K>> {
  readonly kind: K;
  status: StoreStatus = 'subscribing';
  epoch: string | null = null;
  seq = 0;
  lastId: string | undefined;
  duplicatesDropped = 0;
  private current: StreamStateByKind[K];
  /** Events that arrived while a (re)subscribe was unanswered. */
  private held: Envelope[] = [];
  private liveWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];

  constructor(
    readonly stream: StreamName,
    private readonly requestResync: ResyncRequest,
    private readonly onEvent: (envelope: Envelope) => void = () => undefined,
  ) {
    super();
    const parsed = parseStream(stream);
    if (!parsed) throw new Error(`not a stream name: ${stream}`);
    this.kind = parsed.kind as K;
    this.current = initialState(this.kind) as StreamStateByKind[K];
  }

  get state(): StreamStateByKind[K] {
    return this.current;
  }

  /** The position to resubscribe from, or undefined when only a snapshot will do. */
  resumePoint(): { sinceSeq: number; epoch: string; lastId?: string } | undefined {
    if (this.epoch === null) return undefined;
    return { sinceSeq: this.seq, epoch: this.epoch, ...(this.lastId !== undefined ? { lastId: this.lastId } : {}) };
  }

  /** A (re)subscribe was sent: hold events until its answer. */
  beginSubscribe(): void {
    if (this.status !== 'closed') this.status = this.epoch === null ? 'subscribing' : 'resyncing';
  }

  /** The subscribe's answer: take the snapshot (or keep folding after a replay), then what was held. */
  applySubscribeResult(result: SubscribeResult): void {
    if (result.snapshot !== undefined) {
      this.current = result.snapshot as StreamStateByKind[K];
      this.epoch = result.epoch;
      this.seq = result.seq;
      this.lastId = undefined;
      this.emit('change', this.current);
    } else if (this.epoch !== result.epoch) {
      // A replay is only ever answered on our own epoch; anything else is a server bug.
      this.epoch = result.epoch;
    }
    this.status = 'live';
    for (const waiter of this.liveWaiters.splice(0)) waiter.resolve();
    // What was held came through the old subscription, so it is at or before the answer's
    // position: a snapshot already has it, and a replay (which follows this answer) brings
    // it again in order — applying it first would look like a gap. Held events of another
    // epoch than the snapshot's are from before it (a failover or restart started a new
    // epoch): applying one would only ask for another snapshot.
    const held = result.snapshot !== undefined ? this.held.filter((e) => e.epoch === result.epoch).sort((a, b) => a.seq - b.seq) : [];
    this.held = [];
    for (const envelope of held) this.receive(envelope);
  }

  receive(envelope: Envelope): void {
    if (this.status === 'closed') return;
    if (this.status !== 'live') {
      this.held.push(envelope);
      return;
    }
    if (envelope.epoch !== this.epoch) return this.resync('epoch');
    if (envelope.seq <= this.seq) {
      this.duplicatesDropped++;
      return;
    }
    if (envelope.seq !== this.seq + 1) return this.resync('gap');
    this.seq = envelope.seq;
    this.lastId = envelope.id;
    this.current = foldEvent(this.kind, this.current, envelope);
    this.onEvent(envelope);
    this.emit('change', this.current, envelope);
  }

  /** Resolves once the store is live (first answered subscribe); rejects if it is closed first. */
  whenLive(): Promise<void> {
    if (this.status === 'live') return Promise.resolve();
    if (this.status === 'closed') return Promise.reject(new Error(`${this.stream} is closed`));
    return new Promise((resolve, reject) => this.liveWaiters.push({ resolve, reject }));
  }

  close(reason: Error = new Error(`${this.stream} was closed`)): void {
    this.status = 'closed';
    this.held = [];
    for (const waiter of this.liveWaiters.splice(0)) waiter.reject(reason);
  }

  private resync(reason: ResyncReason): void {
    this.status = 'resyncing';
    // After an epoch change the old position means nothing: ask for a snapshot.
    if (reason === 'epoch') {
      this.epoch = null;
      this.seq = 0;
      this.lastId = undefined;
    }
    this.requestResync(this as unknown as StreamStore<StreamKind>, reason);
  }
}
