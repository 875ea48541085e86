import type { CatchUp, ResumePoint } from '@app/backplane';
import type { Envelope, StreamName } from '@app/protocol';
import type { PendingSubscription } from './pending-subscription';

/** What a feed needs from the rest of the pod. */
export interface FeedPorts {
  /** Events `fromSeq..toSeq` still in history, in order. */
  range(stream: StreamName, fromSeq: number, toSeq: number): Promise<Envelope[]>;
  /** The stream's epoch, head seq and the epoch's base (the seq before its first event). */
  head(stream: StreamName): Promise<{ epoch: string; seq: number; base?: number } | null>;
  /** Fans one in-order event out to the sockets in the stream's room. */
  deliver(envelope: Envelope): void;
  onGap(stream: StreamName, result: 'repaired' | 'lost', missing: number): void;
  onError(stream: StreamName, error: unknown): void;
}

/** Events the pod fills from history at once; a longer gap is left to clients (they resync). */
const MAX_REPAIR = 1_000;

/**
 * The feed's newest delivered events it keeps, so a socket that comes back a little behind
 * (a pod killed, a network drop, a client's reconnect) is replayed from memory instead of a
 * Redis read per socket: a reconnect storm's resubscribes then cost the pod no round trip and
 * Redis nothing. 128 covers tens of seconds of a busy bot's coalesced stream.
 */
export const RECENT_EVENTS = 128;

/**
 * A pod's view of one stream's live channel: it turns the raw backplane messages into an
 * in-order, gapless, duplicate-free sequence before anything reaches a socket. A message
 * after a gap (a reconnect of the subscriber, a dropped message) makes it read the missing
 * events from history first. Subscriptions catching up hang on it as
 * {@link PendingSubscription}s until it has delivered up to their catch-up position.
 */
export class StreamFeed {
  refs = 0;
  /** Settles once the channel subscription is confirmed and the feed knows the head. */
  ready: Promise<void> = Promise.resolve();

  private epoch: string | null = null;
  private lastSeq = 0;
  private primed = false;
  private repairing = false;
  private readonly waiting: Envelope[] = [];
  /** A head read by `resync` that the feed must reach even if no message follows. */
  private target: { epoch: string; seq: number; base?: number } | null = null;
  /** Epochs this feed delivered and then left: a catch-up on one of them is behind the feed. */
  private readonly pastEpochs = new Set<string>();
  private readonly pendings = new Set<PendingSubscription>();
  /** The newest delivered events of the current epoch, contiguous, ending at `lastSeq` (or empty). */
  private recent: Envelope[] = [];

  constructor(
    readonly stream: StreamName,
    private readonly ports: FeedPorts,
  ) {}

  /** When the channel last brought this feed a message (ms): a quiet feed is checked against its head. */
  lastMessageAt = Date.now();

  get position(): { epoch: string | null; seq: number } {
    return { epoch: this.epoch, seq: this.lastSeq };
  }

  /** Learns where the stream stands; called once the channel subscription is confirmed. */
  async prime(): Promise<void> {
    const head = await this.ports.head(this.stream);
    if (!this.primed) {
      this.epoch = head?.epoch ?? null;
      this.lastSeq = head?.seq ?? 0;
      this.primed = true;
    }
    await this.repair();
  }

  /**
   * After the subscriber connection came back: events published while it was away never
   * arrive on the channel, so read up to the head now rather than wait for the next event.
   */
  async resync(): Promise<void> {
    if (!this.primed) return this.prime();
    const head = await this.ports.head(this.stream);
    if (!head) return;
    this.target = head;
    await this.repair();
  }

  receive(envelope: Envelope): void {
    this.lastMessageAt = Date.now();
    if (!this.primed || this.repairing || this.waiting.length > 0) {
      this.waiting.push(envelope);
      if (this.primed && !this.repairing) void this.repair();
      return;
    }
    if (envelope.epoch !== this.epoch) {
      // A new epoch starts at seq 1 (a new stream) or, after a failover or restart, right
      // after the surviving head, which only Redis knows: find it out of line.
      if (envelope.seq !== 1) {
        this.waiting.push(envelope);
        void this.repair();
        return;
      }
      this.restart(envelope.epoch, 0);
    }
    if (envelope.seq <= this.lastSeq) return;
    if (envelope.seq === this.lastSeq + 1) return this.emit(envelope);
    this.waiting.push(envelope);
    void this.repair();
  }

  attach(pending: PendingSubscription): void {
    this.pendings.add(pending);
  }

  detach(pending: PendingSubscription): void {
    this.pendings.delete(pending);
  }

  /** The pending subscription's catch-up read reached `seq` of `epoch`. */
  cover(pending: PendingSubscription, epoch: string, seq: number): void {
    pending.covered = { epoch, seq };
    this.tryGoLive(pending);
  }

  /**
   * A resubscribe answered from the events this feed holds, when that is exact: the feed is
   * on the resume's epoch, caught up (nothing waits or repairs, so `position` is what it has
   * delivered), and holds every event after `sinceSeq` — and the one at `sinceSeq` too when
   * the client names it by `lastId`, which must match (PROTOCOL.md §5). Otherwise null: the
   * caller reads history. Call in the same tick as the subscription starts collecting from
   * this feed; the answer's position is the feed's, so the pending subscription goes live at once.
   */
  replayFrom(resume: ResumePoint): Extract<CatchUp, { mode: 'replay' }> | null {
    if (!this.primed || this.repairing || this.waiting.length > 0 || this.target) return null;
    if (this.epoch === null || resume.epoch !== this.epoch || resume.sinceSeq > this.lastSeq || resume.sinceSeq < 0) return null;
    const first = this.recent.length > 0 ? this.recent[0].seq : this.lastSeq + 1;
    if (resume.lastId !== undefined) {
      // The client's event at sinceSeq must be here to compare; a divergence means a snapshot.
      if (resume.sinceSeq < first) return null;
      if (this.recent[resume.sinceSeq - first].id !== resume.lastId) return null;
    } else if (resume.sinceSeq + 1 < first) {
      return null;
    }
    return { mode: 'replay', epoch: this.epoch, seq: this.lastSeq, events: this.recent.slice(resume.sinceSeq + 1 - first) };
  }

  private emit(envelope: Envelope): void {
    this.remember(envelope);
    this.lastSeq = envelope.seq;
    for (const pending of this.pendings) pending.buffer.push(envelope);
    this.ports.deliver(envelope);
    for (const pending of this.pendings) this.tryGoLive(pending);
  }

  private remember(envelope: Envelope): void {
    if (envelope.seq !== this.lastSeq + 1) this.recent = [];
    this.recent.push(envelope);
    // Trimmed in steps, not per event: a shift of a 128-slot array on every event adds up.
    if (this.recent.length > 2 * RECENT_EVENTS) this.recent = this.recent.slice(-RECENT_EVENTS);
  }

  private tryGoLive(pending: PendingSubscription): void {
    const covered = pending.covered;
    if (!covered) return;
    if (covered.epoch === this.epoch) {
      // Behind the subscriber's position on the same history: the events up to it are
      // still on their way through this feed and would reach the socket a second time.
      if (this.lastSeq < covered.seq) return;
    } else if (!this.pastEpochs.has(covered.epoch)) {
      // The catch-up saw a history this feed has not reached yet (a reset the feed has not
      // heard of, or a stream that did not exist when it started): catch the feed up first.
      if (!pending.resyncRequested) {
        pending.resyncRequested = true;
        void this.resync().catch((error: unknown) => this.ports.onError(this.stream, error));
      }
      return;
    }
    this.pendings.delete(pending);
    pending.finish();
  }

  private tryGoLiveAll(): void {
    for (const pending of this.pendings) this.tryGoLive(pending);
  }

  /**
   * Moves the feed to another epoch, positioned at `base`: the seq before the epoch's first
   * event (0 for a new stream; the surviving head for an epoch a failover or restart started,
   * whose seqs continue — the events up to it belong to the previous epoch).
   */
  private restart(epoch: string, base: number): void {
    if (this.epoch !== null) this.pastEpochs.add(this.epoch);
    // Only recent resets matter to a catch-up in flight; keep the set small.
    if (this.pastEpochs.size > 8) this.pastEpochs.delete(this.pastEpochs.values().next().value as string);
    this.epoch = epoch;
    this.lastSeq = base;
    this.recent = [];
  }

  /**
   * A message of an epoch the feed is not on, after its first seq: the head says where that
   * epoch starts. If the stream has moved on to yet another epoch, the message's epoch is
   * already over and its messages are dropped (the newer one's arrive, or a resync finds it).
   */
  private async enterEpoch(envelope: Envelope): Promise<void> {
    const head = await this.ports.head(this.stream);
    if (head && head.epoch === envelope.epoch) {
      if (this.epoch !== envelope.epoch) this.restart(envelope.epoch, Math.min(head.base ?? 0, envelope.seq - 1));
      return;
    }
    if (head && this.epoch === head.epoch) {
      this.pastEpochs.add(envelope.epoch);
    } else if (!head) {
      // The stream is gone (its keys expired or were lost): nothing to fill from; start here.
      this.restart(envelope.epoch, envelope.seq - 1);
      return;
    }
    const stale = envelope.epoch;
    for (let i = this.waiting.length - 1; i >= 0; i--) if (this.waiting[i].epoch === stale) this.waiting.splice(i, 1);
    if (head && this.epoch !== head.epoch && !this.target) this.target = head;
  }

  /** Delivers waiting events in order, filling each gap from history first. */
  private async repair(): Promise<void> {
    if (this.repairing) return;
    this.repairing = true;
    try {
      while (this.target || this.waiting.length > 0) {
        const target = this.target;
        if (target) {
          if (target.epoch !== this.epoch && this.pastEpochs.has(target.epoch)) {
            // A head read from before the feed entered a newer epoch (a resync racing the
            // first event after a Redis restart or failover): stale. Going back would deliver
            // the old epoch again from its start.
            if (this.target === target) this.target = null;
            continue;
          }
          if (target.epoch !== this.epoch) this.restart(target.epoch, target.base ?? 0);
          if (target.seq > this.lastSeq) await this.fill(target.seq);
          // A resync during the fill may have set a newer target: keep that one.
          if (this.target === target) this.target = null;
          this.tryGoLiveAll();
          continue;
        }
        this.waiting.sort((a, b) => (a.epoch === b.epoch ? a.seq - b.seq : 0));
        const next = this.waiting[0];
        if (next.epoch !== this.epoch) {
          if (next.seq === 1) {
            this.restart(next.epoch, 0);
          } else {
            await this.enterEpoch(next);
            continue;
          }
        }
        if (next.seq <= this.lastSeq) {
          this.waiting.shift();
        } else if (next.seq === this.lastSeq + 1) {
          this.waiting.shift();
          this.emit(next);
        } else {
          await this.fill(next.seq - 1);
        }
      }
    } catch (error) {
      // History unreachable (Redis down): keep what waits; the next message or the
      // reconnect's resync tries again.
      this.ports.onError(this.stream, error);
    } finally {
      this.repairing = false;
    }
  }

  /** Delivers history events up to `toSeq`; what history no longer holds is skipped. */
  private async fill(toSeq: number): Promise<void> {
    const missing = toSeq - this.lastSeq;
    if (missing > MAX_REPAIR) {
      this.lastSeq = toSeq;
      this.recent = [];
      this.ports.onGap(this.stream, 'lost', missing);
      this.tryGoLiveAll();
      return;
    }
    const events = (await this.ports.range(this.stream, this.lastSeq + 1, toSeq)).filter((e) => e.epoch === this.epoch && e.seq > this.lastSeq);
    // Retention trimmed the start of the gap: skip what is gone, deliver what is still there.
    const lost = events.length > 0 ? events[0].seq - this.lastSeq - 1 : toSeq - this.lastSeq;
    if (lost > 0) {
      this.lastSeq += lost;
      this.recent = [];
    }
    for (const event of events) if (event.seq === this.lastSeq + 1) this.emit(event);
    this.ports.onGap(this.stream, lost > 0 ? 'lost' : 'repaired', missing);
    this.tryGoLiveAll();
  }
}
