import { type StreamPublisher, streamKeys } from '@app/backplane';
import { backoffDelay, type BackoffOptions, RealtimeClient, type StreamStore } from '@app/client';
import type { Ack, BotEvent, BotState, DagState, Envelope, StreamName, SubscribeResult } from '@app/protocol';
import { waitFor } from '@app/runtime';
import type { DropMode, TcpProxy } from '@app/runtime/testing/tcp-proxy';
import { io } from 'socket.io-client';
import { connectSocket, type RawSocket } from './sockets';
import { signToken } from './tokens';

/**
 * Fault drills (test/drills.e2e-spec.ts, and the load kit at scale): a fleet of clients
 * that each check their own streams — every event exactly once, in seq order, across
 * reconnects — a steady publisher, the faults (pod kill, rolling restart, connection
 * jitter and network drops through a TcpProxy), and the figures they print.
 *
 * Two kinds of client, one interface (`Watcher`):
 * - `LiteClient`: a bare socket.io-client speaking PROTOCOL.md §5 itself — on each new
 *   connection it resubscribes every stream with `sinceSeq`/`epoch`/`lastId`, and it checks
 *   every `event` frame on the wire: a seq at or before its position is a duplicate, one
 *   past `position + 1` a loss. Cheap enough for hundreds per test process.
 * - `SdkWatcher`: the SDK (`RealtimeClient` + `StreamStore`), checked on what the
 *   application sees (`event`, snapshots) and on what the store had to repair (`resync`
 *   for a gap, `duplicatesDropped`).
 */

export interface Head {
  epoch: string | null;
  seq: number;
}

export interface WatcherStats {
  /** Events taken in order. */
  delivered: number;
  /** Events that came after a hole, and the seqs the holes skipped: loss. */
  gaps: number;
  missing: number;
  /** Events at or before the position: seen twice. */
  duplicates: number;
  /** Anything else off the contract, in words. */
  protocolErrors: string[];
  /** `hello`s (connections that made it), connections lost, `draining` notices. */
  connects: number;
  drops: number;
  drains: number;
  /** Subscribes sent with a position (after a reconnect). */
  resubscribes: number;
  /** Subscribes answered by a snapshot, the first subscribe of each stream left out. */
  snapshots: number;
  /** Events of a new epoch met on the wire (each asks for a snapshot). */
  epochChanges: number;
  /** Per resubscribe answered with a replay: how many events it replayed (lite clients: the SDK keeps its answers). */
  replayed: number[];
  /** Per resubscribe: request → acknowledgement, ms (lite clients). */
  resubscribeMs: number[];
  /** Per lost connection: lost → every stream subscribed again, ms (backoff included). */
  recoveryMs: number[];
  /** `Date.now()` of the last recovery. */
  lastRecoveredAt: number;
  /** Subscribes answered with an error or not at all (retried). */
  subscribeErrors: number;
}

export interface Watcher {
  readonly name: string;
  readonly kind: 'lite' | 'sdk';
  readonly streams: StreamName[];
  readonly stats: WatcherStats;
  /** The pod it is connected to (`hello.serverId`), or null. */
  readonly serverId: string | null;
  /** Connected, and every stream's subscribe answered on this connection. */
  readonly settled: boolean;
  position(stream: StreamName): Head;
  close(): void;
}

function emptyStats(): WatcherStats {
  return {
    delivered: 0,
    gaps: 0,
    missing: 0,
    duplicates: 0,
    protocolErrors: [],
    connects: 0,
    drops: 0,
    drains: 0,
    resubscribes: 0,
    snapshots: 0,
    epochChanges: 0,
    replayed: [],
    resubscribeMs: [],
    recoveryMs: [],
    lastRecoveredAt: 0,
    subscribeErrors: 0,
  };
}

export interface LiteClientOptions {
  name: string;
  /** Pods (or proxies in front of them); each reconnect goes to another one, at random. */
  urls: string[];
  token: string;
  streams: StreamName[];
  /** Index of the first URL (spreads a fleet over the pods). */
  first?: number;
  /** Delay before reconnecting: full-jitter backoff (default 250 ms doubling to 2 s). */
  backoff?: BackoffOptions;
  /** Time offline after losing a connection, instead of the backoff's first step. */
  offlineMs?: () => number;
  connectTimeoutMs?: number;
}

interface Subscription {
  stream: StreamName;
  epoch: string | null;
  seq: number;
  lastId: string | undefined;
  /** The subscribe in flight on the current connection; events wait in `held` meanwhile. */
  pending: object | null;
  held: Envelope[];
  /** Answered at least once (the first answer, a snapshot, is not counted as a resync). */
  answered: boolean;
  /** Answered on the current connection: before that, no event of the stream may arrive on it. */
  joined: boolean;
}

let liteCommands = 0;

/** A bare Socket.IO client that resubscribes from its position and checks every frame. */
export class LiteClient implements Watcher {
  readonly kind = 'lite';
  readonly stats = emptyStats();
  serverId: string | null = null;
  private socket: RawSocket | null = null;
  private connected = false;
  private closed = false;
  private attempt = 0;
  private urlIndex: number;
  private lostAt: number | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly subs = new Map<StreamName, Subscription>();

  constructor(private readonly options: LiteClientOptions) {
    this.urlIndex = (options.first ?? 0) % options.urls.length;
    for (const stream of options.streams)
      this.subs.set(stream, { stream, epoch: null, seq: 0, lastId: undefined, pending: null, held: [], answered: false, joined: false });
    this.open();
  }

  get name(): string {
    return this.options.name;
  }

  get streams(): StreamName[] {
    return this.options.streams;
  }

  get settled(): boolean {
    return this.connected && [...this.subs.values()].every((s) => s.answered && s.pending === null);
  }

  position(stream: StreamName): Head {
    const sub = this.subs.get(stream);
    return { epoch: sub?.epoch ?? null, seq: sub?.seq ?? 0 };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.dropSocket();
  }

  private open(): void {
    if (this.closed) return;
    const socket: RawSocket = io(this.options.urls[this.urlIndex], {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      timeout: this.options.connectTimeoutMs ?? 5_000,
      auth: { token: this.options.token },
    });
    this.socket = socket;
    socket.on('hello', (hello) => {
      this.connected = true;
      this.serverId = hello.serverId;
      this.attempt = 0;
      this.stats.connects++;
      for (const sub of this.subs.values()) this.subscribe(sub, socket, 'connect');
    });
    socket.on('event', (envelope) => this.receive(envelope, socket));
    socket.on('draining', (notice) => {
      this.stats.drains++;
      this.lose(socket, notice.reconnectInMs);
    });
    socket.on('disconnect', () => this.lose(socket));
    socket.on('connect_error', () => this.lose(socket));
  }

  /** The connection is gone (or never came): reconnect to another URL after a delay. */
  private lose(socket: RawSocket, delayMs?: number): void {
    if (socket !== this.socket) return;
    if (this.connected) {
      this.stats.drops++;
      this.lostAt ??= Date.now();
    }
    this.dropSocket();
    if (this.closed) return;
    const delay =
      delayMs ?? (this.attempt === 0 && this.options.offlineMs ? this.options.offlineMs() : backoffDelay(this.attempt, this.options.backoff ?? DRILL_BACKOFF));
    this.attempt++;
    if (this.options.urls.length > 1)
      this.urlIndex = (this.urlIndex + 1 + Math.floor(Math.random() * (this.options.urls.length - 1))) % this.options.urls.length;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.open();
    }, delay);
  }

  private dropSocket(): void {
    const socket = this.socket;
    this.socket = null;
    this.connected = false;
    this.serverId = null;
    for (const sub of this.subs.values()) {
      sub.pending = null;
      sub.held = [];
      sub.joined = false;
    }
    if (socket) {
      socket.removeAllListeners();
      socket.close();
    }
  }

  /** Subscribes from the position (a replay), or without one (a snapshot) when there is none. */
  private subscribe(sub: Subscription, socket: RawSocket, reason: 'connect' | 'epoch' | 'retry'): void {
    const token = {};
    sub.pending = token;
    if (reason !== 'retry') sub.held = [];
    const resume = sub.epoch !== null;
    const payload = resume
      ? { stream: sub.stream, sinceSeq: sub.seq, epoch: sub.epoch, ...(sub.lastId ? { lastId: sub.lastId } : {}) }
      : { stream: sub.stream };
    const sentAt = Date.now();
    const request = { v: 1, id: `drill-${process.pid}-${++liteCommands}`, type: 'subscribe', payload };
    // The answer is handled in the ack callback itself, never a promise: the replayed
    // events may arrive in the same TCP read, and must find the subscription answered.
    const onAck = (error: Error | null, answer: Ack<SubscribeResult>) => {
      if (socket !== this.socket || sub.pending !== token) return;
      if (error) return this.retrySubscribe(sub, socket, 0);
      if (!answer.ok) return this.retrySubscribe(sub, socket, answer.error.retryAfterMs ?? 500);
      this.answered(sub, answer.result, { resume, sentAt });
    };
    (socket.timeout(10_000) as unknown as { emit(event: string, request: unknown, ack: typeof onAck): void }).emit('command', request, onAck);
  }

  private retrySubscribe(sub: Subscription, socket: RawSocket, delayMs: number): void {
    this.stats.subscribeErrors++;
    const token = sub.pending;
    setTimeout(() => {
      if (socket === this.socket && sub.pending === token) this.subscribe(sub, socket, 'retry');
    }, delayMs);
  }

  private answered(sub: Subscription, result: SubscribeResult, { resume, sentAt }: { resume: boolean; sentAt: number }): void {
    const held = sub.held;
    sub.held = [];
    sub.pending = null;
    if (!sub.joined && held.length > 0) this.stats.protocolErrors.push(`${sub.stream}: ${held.length} events before the subscribe ack on a new connection`);
    if (result.snapshot !== undefined) {
      if (sub.answered) this.stats.snapshots++;
      sub.epoch = result.epoch;
      sub.seq = result.seq;
      sub.lastId = undefined;
      // Held events came through the previous subscription on this connection: what the
      // snapshot already covers, or the new epoch's first events after it.
      for (const envelope of held.filter((e) => e.epoch === result.epoch && e.seq > result.seq).sort((a, b) => a.seq - b.seq)) this.take(sub, envelope);
    } else {
      if (result.epoch !== sub.epoch) this.stats.protocolErrors.push(`${sub.stream}: replay on epoch ${result.epoch}, asked ${String(sub.epoch)}`);
      if (result.seq !== sub.seq + result.replayed)
        this.stats.protocolErrors.push(`${sub.stream}: replay of ${result.replayed} after ${sub.seq} ends at ${result.seq}`);
      this.stats.replayed.push(result.replayed);
    }
    sub.answered = true;
    sub.joined = true;
    if (resume) {
      this.stats.resubscribes++;
      this.stats.resubscribeMs.push(Date.now() - sentAt);
    }
    if (this.lostAt !== null && this.settled) {
      this.stats.lastRecoveredAt = Date.now();
      this.stats.recoveryMs.push(this.stats.lastRecoveredAt - this.lostAt);
      this.lostAt = null;
    }
  }

  private receive(envelope: Envelope, socket: RawSocket): void {
    const sub = this.subs.get(envelope.stream);
    if (!sub) return void this.stats.protocolErrors.push(`an event of ${envelope.stream}, never subscribed`);
    if (sub.pending) return void sub.held.push(envelope);
    if (envelope.epoch !== sub.epoch) {
      // A new epoch (Redis lost or changed its master): only a snapshot will do.
      this.stats.epochChanges++;
      sub.epoch = null;
      sub.seq = 0;
      sub.lastId = undefined;
      this.subscribe(sub, socket, 'epoch');
      sub.held.push(envelope);
      return;
    }
    this.take(sub, envelope);
  }

  private take(sub: Subscription, envelope: Envelope): void {
    if (envelope.seq <= sub.seq) {
      this.stats.duplicates++;
      return;
    }
    if (envelope.seq !== sub.seq + 1) {
      this.stats.gaps++;
      this.stats.missing += envelope.seq - sub.seq - 1;
    }
    sub.seq = envelope.seq;
    sub.lastId = envelope.id;
    this.stats.delivered++;
  }
}

export const DRILL_BACKOFF: BackoffOptions = { baseMs: 250, maxMs: 2_000 };

/** The SDK as a dashboard uses it, watched from outside. */
export class SdkWatcher implements Watcher {
  readonly kind = 'sdk';
  readonly stats = emptyStats();
  readonly client: RealtimeClient;
  readonly stores = new Map<StreamName, StreamStore>();
  private readonly seen = new Map<StreamName, Head>();
  private lostAt: number | null = null;
  private wasConnected = false;

  constructor(
    readonly name: string,
    readonly streams: StreamName[],
    { urls, token, backoff = DRILL_BACKOFF, first = 0 }: { urls: string[]; token: string; backoff?: BackoffOptions; first?: number },
  ) {
    const rotated = [...urls.slice(first % urls.length), ...urls.slice(0, first % urls.length)];
    this.client = new RealtimeClient({ url: rotated, token: () => token, backoff, commandTimeoutMs: 20_000 });
    this.client.on('status', (status) => {
      if (status === 'reconnecting' && this.wasConnected) {
        this.wasConnected = false;
        this.stats.drops++;
        this.lostAt ??= Date.now();
      }
    });
    this.client.on('hello', () => {
      this.wasConnected = true;
      this.stats.connects++;
      // The client resubscribes every store right after this listener returns.
      queueMicrotask(() => void this.whenResubscribed());
    });
    this.client.on('resync', ({ reason }) => {
      if (reason === 'gap') this.stats.gaps++;
      if (reason === 'epoch') this.stats.epochChanges++;
      if (reason === 'reconnect') this.stats.resubscribes++;
    });
    this.client.on('event', (envelope) => this.take(envelope));
    for (const stream of streams) {
      void this.client.subscribe(stream).catch(() => undefined);
      const store = this.client.store(stream) as StreamStore;
      this.stores.set(stream, store);
      let first = true;
      store.on('change', (_state, event) => {
        if (event) return;
        // A snapshot: the application's position jumps to it.
        if (!first) this.stats.snapshots++;
        first = false;
        this.seen.set(stream, { epoch: store.epoch, seq: store.seq });
      });
    }
  }

  get serverId(): string | null {
    return this.client.hello?.serverId ?? null;
  }

  get settled(): boolean {
    return this.client.status === 'connected' && [...this.stores.values()].every((s) => s.status === 'live');
  }

  /** Duplicates the store dropped before the application saw them. */
  get duplicatesDropped(): number {
    return [...this.stores.values()].reduce((sum, s) => sum + s.duplicatesDropped, 0);
  }

  position(stream: StreamName): Head {
    return this.seen.get(stream) ?? { epoch: null, seq: 0 };
  }

  close(): void {
    this.client.close();
  }

  private async whenResubscribed(): Promise<void> {
    const since = this.lostAt;
    if (since === null) return;
    await Promise.all([...this.stores.values()].map((s) => s.whenLive())).catch(() => undefined);
    if (this.lostAt === since && this.client.status === 'connected') {
      this.stats.lastRecoveredAt = Date.now();
      this.stats.recoveryMs.push(this.stats.lastRecoveredAt - since);
      this.lostAt = null;
    }
  }

  private take(envelope: Envelope): void {
    const at = this.seen.get(envelope.stream as StreamName);
    if (!at || at.epoch !== envelope.epoch) {
      this.stats.protocolErrors.push(`${envelope.stream}: the SDK passed on seq ${envelope.seq} of epoch ${envelope.epoch} without a snapshot of it`);
    } else if (envelope.seq <= at.seq) {
      this.stats.duplicates++;
      return;
    } else if (envelope.seq !== at.seq + 1) {
      this.stats.gaps++;
      this.stats.missing += envelope.seq - at.seq - 1;
    }
    this.seen.set(envelope.stream as StreamName, { epoch: envelope.epoch, seq: envelope.seq });
    this.stats.delivered++;
  }
}

export interface FleetOptions {
  urls: string[];
  /** The streams of client `i`. */
  streamsFor: (i: number) => StreamName[];
  lite: number;
  sdk: number;
  backoff?: BackoffOptions;
  /** Lite clients: time offline after a lost connection (default: the backoff's first step). */
  offlineMs?: () => number;
  name?: string;
}

/** Many clients, spread over the URLs, checked together. */
export class Fleet {
  private constructor(readonly watchers: Watcher[]) {}

  static async start({ urls, streamsFor, lite, sdk, backoff, offlineMs, name = 'c' }: FleetOptions): Promise<Fleet> {
    const tokens = await Promise.all(Array.from({ length: lite + sdk }, (_, i) => signToken({ sub: `${name}-${i}`, scope: ['bot:*'] })));
    const watchers: Watcher[] = [];
    for (let i = 0; i < lite + sdk; i++) {
      watchers.push(
        i < lite
          ? new LiteClient({ name: `${name}-${i}`, urls, token: tokens[i], streams: streamsFor(i), first: i, backoff, offlineMs })
          : new SdkWatcher(`${name}-${i}`, streamsFor(i), { urls, token: tokens[i], backoff, first: i }),
      );
    }
    return new Fleet(watchers);
  }

  get size(): number {
    return this.watchers.length;
  }

  on(serverId: string): Watcher[] {
    return this.watchers.filter((w) => w.serverId === serverId);
  }

  /** Every client connected and live on all its streams. */
  async settled(message: string, timeoutMs = 30_000): Promise<void> {
    await explained(
      waitFor(() => this.watchers.every((w) => w.settled), { timeoutMs, intervalMs: 25, message }),
      () => `${this.watchers.filter((w) => !w.settled).length} of ${this.size} clients not settled`,
    );
  }

  /** Every client's position on each of its streams is at least `heads` (same epoch). */
  atLeast(heads: Map<StreamName, Head>): boolean {
    return this.watchers.every((w) =>
      w.streams.every((s) => {
        const head = heads.get(s);
        const at = w.position(s);
        return !head || (at.epoch === head.epoch && at.seq >= head.seq);
      }),
    );
  }

  async caughtUp(heads: Map<StreamName, Head>, message: string, timeoutMs = 30_000): Promise<void> {
    await explained(
      waitFor(() => this.atLeast(heads), { timeoutMs, intervalMs: 25, message }),
      () => this.behind(heads).slice(0, 4).join('; '),
    );
  }

  /** Every client has received at least `count` events since `delivered` was taken. */
  async flowing(count: number, message: string, timeoutMs = 20_000): Promise<void> {
    const base = this.watchers.map((w) => w.stats.delivered);
    await waitFor(() => this.watchers.every((w, i) => w.stats.delivered - base[i] >= count), { timeoutMs, intervalMs: 25, message });
  }

  /**
   * What went wrong, per client: losses, duplicates, protocol errors, and at the end any
   * stream not exactly at its head. Empty when every client saw every event exactly once.
   */
  problems(heads?: Map<StreamName, Head>, { sdkStoreDuplicates = true }: { sdkStoreDuplicates?: boolean } = {}): string[] {
    const problems: string[] = [];
    for (const w of this.watchers) {
      const { gaps, missing, duplicates, protocolErrors } = w.stats;
      if (gaps > 0) problems.push(`${w.name}: ${gaps} gaps, ${missing} events missing`);
      if (duplicates > 0) problems.push(`${w.name}: ${duplicates} duplicates`);
      if (sdkStoreDuplicates && w instanceof SdkWatcher && w.duplicatesDropped > 0)
        problems.push(`${w.name}: the store dropped ${w.duplicatesDropped} duplicates`);
      for (const error of protocolErrors.slice(0, 3)) problems.push(`${w.name}: ${error}`);
      for (const s of heads ? w.streams : []) {
        const head = heads?.get(s);
        const at = w.position(s);
        if (head && (at.epoch !== head.epoch || at.seq !== head.seq)) problems.push(`${w.name}: ${s} at ${at.seq}/${at.epoch}, head ${head.seq}/${head.epoch}`);
      }
    }
    return problems;
  }

  sum(
    key: 'delivered' | 'gaps' | 'missing' | 'duplicates' | 'connects' | 'drops' | 'drains' | 'resubscribes' | 'snapshots' | 'epochChanges',
    of = this.watchers,
  ): number {
    return of.reduce((total, w) => total + w.stats[key], 0);
  }

  all(key: 'replayed' | 'resubscribeMs' | 'recoveryMs', of = this.watchers): number[] {
    return of.flatMap((w) => w.stats[key]);
  }

  /** The figures every drill reports about its clients, from `since` (taken with `mark()`). */
  figures(since: FleetMark = this.emptyMark()): Record<string, unknown> {
    const d = (key: Parameters<Fleet['sum']>[0]) => this.sum(key) - since.sums[key];
    const after = (key: Parameters<Fleet['all']>[0]) => this.watchers.flatMap((w, i) => w.stats[key].slice(since.lengths[i][key]));
    const replayed = after('replayed');
    return {
      clients: this.size,
      drops: d('drops'),
      reconnects: d('connects'),
      resubscribes: d('resubscribes'),
      replayed: { ...summary(replayed), total: replayed.reduce((a, b) => a + b, 0) },
      resubscribeMs: summary(after('resubscribeMs')),
      recoveryMs: summary(after('recoveryMs')),
      snapshots: d('snapshots'),
      delivered: d('delivered'),
      lost: d('missing'),
      duplicates: d('duplicates'),
    };
  }

  mark(): FleetMark {
    const keys = ['delivered', 'gaps', 'missing', 'duplicates', 'connects', 'drops', 'drains', 'resubscribes', 'snapshots', 'epochChanges'] as const;
    return {
      sums: Object.fromEntries(keys.map((k) => [k, this.sum(k)])) as FleetMark['sums'],
      lengths: this.watchers.map((w) => ({
        replayed: w.stats.replayed.length,
        resubscribeMs: w.stats.resubscribeMs.length,
        recoveryMs: w.stats.recoveryMs.length,
      })),
    };
  }

  /** The SDK clients' stores equal a fresh snapshot of each stream (the server's fold). */
  async storesMatchServer(url: string): Promise<string[]> {
    const sdk = this.watchers.filter((w): w is SdkWatcher => w instanceof SdkWatcher);
    const streams = [...new Set(sdk.flatMap((w) => w.streams))];
    const fresh = await connectSocket(url, await signToken({ sub: 'drill-check' }));
    try {
      const problems: string[] = [];
      for (const stream of streams) {
        const ack = await fresh.command<SubscribeResult>('subscribe', { stream });
        if (!ack.ok) throw new Error(`subscribe ${stream}: ${ack.error.code}`);
        const server = ack.result.snapshot as BotState | DagState;
        for (const w of sdk.filter((x) => x.streams.includes(stream))) {
          const store = w.stores.get(stream) as StreamStore;
          if (store.seq !== ack.result.seq || store.epoch !== ack.result.epoch)
            problems.push(`${w.name}: ${stream} store at ${store.seq}, server at ${ack.result.seq}`);
          else if (JSON.stringify(store.state) !== JSON.stringify(server)) problems.push(`${w.name}: ${stream} state differs from the server's snapshot`);
        }
      }
      return problems;
    } finally {
      fresh.close();
    }
  }

  close(): void {
    for (const w of this.watchers) w.close();
  }

  private behind(heads: Map<StreamName, Head>): string[] {
    const out: string[] = [];
    for (const w of this.watchers) {
      for (const s of w.streams) {
        const head = heads.get(s);
        const at = w.position(s);
        if (head && !(at.epoch === head.epoch && at.seq >= head.seq))
          out.push(`${w.name} ${s} at ${at.seq}, head ${head.seq}${at.epoch === head.epoch ? '' : ' (other epoch)'}`);
      }
    }
    return out.length ? [`${out.length} behind`, ...out] : [];
  }

  private emptyMark(): FleetMark {
    return {
      sums: { delivered: 0, gaps: 0, missing: 0, duplicates: 0, connects: 0, drops: 0, drains: 0, resubscribes: 0, snapshots: 0, epochChanges: 0 },
      lengths: this.watchers.map(() => ({ replayed: 0, resubscribeMs: 0, recoveryMs: 0 })),
    };
  }
}

/** A failed wait, with the state that explains it. */
async function explained<T>(waiting: Promise<T>, explain: () => string): Promise<T> {
  try {
    return await waiting;
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${explain()}`);
  }
}

export interface FleetMark {
  sums: Record<'delivered' | 'gaps' | 'missing' | 'duplicates' | 'connects' | 'drops' | 'drains' | 'resubscribes' | 'snapshots' | 'epochChanges', number>;
  lengths: Array<Record<'replayed' | 'resubscribeMs' | 'recoveryMs', number>>;
}

/**
 * Publishes to each stream at `ratePerStream` events/s, open loop (a slow publish does
 * not slow the others; at most `maxInFlight` at once), and keeps going through failures:
 * while Redis is away, publishes fail and are counted, and at most a second's backlog is
 * sent when it returns. Each stream starts with `run_started`, then `thinking` deltas
 * that the bot reducer folds into that run, so snapshots carry every event.
 */
export class SteadyPublisher {
  readonly stats = { ok: 0, failed: 0, skipped: 0 };
  private readonly sent = new Map<StreamName, number>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private inFlight = new Set<Promise<unknown>>();
  private startedAt = 0;

  constructor(
    private readonly publisher: StreamPublisher,
    readonly streams: StreamName[],
    readonly ratePerStream: number,
    private readonly maxInFlight = 64,
  ) {}

  start(): this {
    this.startedAt = Date.now();
    for (const stream of this.streams) this.sent.set(stream, 0);
    this.timer = setInterval(() => this.tick(), 10);
    return this;
  }

  /** Stops publishing and waits (at most `waitMs`) for the publishes in flight; answers how many never settled. */
  async stop(waitMs = 10_000): Promise<number> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const deadline = Date.now() + waitMs;
    while (this.inFlight.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())))]);
    }
    return this.inFlight.size;
  }

  private tick(): void {
    const due = Math.floor(((Date.now() - this.startedAt) / 1000) * this.ratePerStream);
    for (const stream of this.streams) {
      let sent = this.sent.get(stream) ?? 0;
      if (due - sent > this.ratePerStream) {
        this.stats.skipped += due - sent - this.ratePerStream;
        sent = due - this.ratePerStream;
      }
      while (sent < due && this.inFlight.size < this.maxInFlight) {
        const draft: BotEvent =
          sent === 0
            ? { type: 'run_started', payload: { runId: 'drill', sessionId: 'drill', model: 'demo' } }
            : { type: 'thinking', payload: { sessionId: 'drill', runId: 'drill', content: `${sent} ` } };
        const publishing = this.publisher.publish(stream, draft).then(
          () => void this.stats.ok++,
          () => void this.stats.failed++,
        );
        this.inFlight.add(publishing);
        void publishing.finally(() => this.inFlight.delete(publishing));
        sent++;
      }
      this.sent.set(stream, sent);
    }
  }
}

/**
 * Reads each stream's epoch and head seq from Redis (`meta`). Rejects after `timeoutMs`
 * rather than hang on a connection that is still finding its way back after a restart
 * (so a `waitFor` around it asks again).
 */
export async function readHeads(
  redis: { hmget(key: string, ...fields: string[]): Promise<Array<string | null>> },
  streams: StreamName[],
  timeoutMs = 3_000,
): Promise<Map<StreamName, Head>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer from Redis within ${timeoutMs} ms`)), timeoutMs)));
  try {
    const read = Promise.all(streams.map((stream) => redis.hmget(streamKeys(stream).meta, 'epoch', 'seq')));
    const answers = await Promise.race([read, timeout]);
    return new Map(streams.map((stream, i) => [stream, { epoch: answers[i][0], seq: Number(answers[i][1] ?? 0) }]));
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------
// The faults, on pods and proxies only: the load kit drives them the same way.

/** What a rolling restart needs of a pod (test/support/processes.ts' AppProcess has it). */
export interface RestartablePod {
  readonly url: string;
  stop(): Promise<number | null>;
  start(): Promise<unknown>;
}

export interface RollingStep {
  pod: string;
  exitCode: number | null;
  /** SIGTERM → the process exited (drained). */
  drainMs: number;
  /** Start → ready again. */
  startMs: number;
}

/**
 * SIGTERM each pod in turn: `before(pod)` (e.g. note who is on it), wait for its drain and
 * exit, then start it again at once while `after(pod)` runs (e.g. wait until each of its
 * clients is back, on another pod or on the restarted one); both must end before the next.
 */
export async function rollingRestart(
  pods: RestartablePod[],
  {
    before,
    after,
  }: { before?: (pod: RestartablePod, index: number) => void | Promise<void>; after?: (pod: RestartablePod, index: number) => Promise<void> } = {},
): Promise<RollingStep[]> {
  const steps: RollingStep[] = [];
  for (const [i, pod] of pods.entries()) {
    await before?.(pod, i);
    const stoppedAt = Date.now();
    const exitCode = await pod.stop();
    const drainMs = Date.now() - stoppedAt;
    const startedAt = Date.now();
    const [startMs] = await Promise.all([pod.start().then(() => Date.now() - startedAt), after?.(pod, i)]);
    steps.push({ pod: pod.url, exitCode, drainMs, startMs });
  }
  return steps;
}

/**
 * Connection jitter in the shape of AnyCable's benchmark: for `durationMs`, every
 * connection through the proxies is force-closed (TCP reset) when it reaches a random age
 * in [minMs, maxMs]; the connections open at the start get a random phase in [0, maxMs] so
 * they do not all go at once. Clients reconnect (through the proxies) as they like.
 */
export async function connectionJitter(
  proxies: TcpProxy[],
  { minMs, maxMs, durationMs }: { minMs: number; maxMs: number; durationMs: number },
): Promise<{ forceClosed: number }> {
  const start = Date.now();
  const deadlines = new Map<TcpProxy, Map<number, number>>(proxies.map((p) => [p, new Map()]));
  let forceClosed = 0;
  while (Date.now() - start < durationMs) {
    const now = Date.now();
    for (const proxy of proxies) {
      const known = deadlines.get(proxy) as Map<number, number>;
      const open = proxy.connections();
      const ids = new Set(open.map((c) => c.id));
      for (const id of known.keys()) if (!ids.has(id)) known.delete(id);
      for (const connection of open) {
        let deadline = known.get(connection.id);
        if (deadline === undefined) {
          deadline = connection.openedAt < start ? start + Math.random() * maxMs : connection.openedAt + minMs + Math.random() * (maxMs - minMs);
          known.set(connection.id, deadline);
        }
        if (now >= deadline) {
          connection.destroy();
          known.delete(connection.id);
          forceClosed++;
        }
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { forceClosed };
}

/**
 * `drops` network drops of `dropMs` on every proxy at once (each resets what is open and
 * turns new connections away, `modes[i % modes.length]`), with `between(i)` after each
 * (e.g. wait until every client is back and events flow) before the next.
 */
export async function networkDrops(
  proxies: TcpProxy[],
  { drops, dropMs, modes = ['refuse'] }: { drops: number; dropMs: number; modes?: DropMode[] },
  between: (index: number, endedAt: number) => Promise<void>,
): Promise<Array<{ mode: DropMode; connectionsReset: number; turnedAway: number }>> {
  const results: Array<{ mode: DropMode; connectionsReset: number; turnedAway: number }> = [];
  for (let i = 0; i < drops; i++) {
    const mode = modes[i % modes.length];
    const open = proxies.reduce((n, p) => n + p.connections().length, 0);
    const turnedAway = proxies.reduce((n, p) => n + p.stats.turnedAway, 0);
    await Promise.all(proxies.map((p) => p.drop(dropMs, { mode })));
    results.push({ mode, connectionsReset: open, turnedAway: proxies.reduce((n, p) => n + p.stats.turnedAway, 0) - turnedAway });
    await between(i, Date.now());
  }
  return results;
}

// ---------------------------------------------------------------------------------------
// Figures.

/** Nearest-rank percentile; NaN for no values. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function summary(values: number[]): { n: number; p50: number | null; p99: number | null; max: number | null } {
  if (values.length === 0) return { n: 0, p50: null, p99: null, max: null };
  return { n: values.length, p50: Math.round(percentile(values, 50)), p99: Math.round(percentile(values, 99)), max: Math.round(Math.max(...values)) };
}

/** One compact JSON line per drill, for humans and for the load kit's report. */
export function reportDrill(drill: string, figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ drill, redis: process.env.TEST_REDIS_TOPOLOGY === 'cluster' ? 'cluster' : 'single', ...figures }));
}

export async function readyStatus(url: string): Promise<number> {
  const response = await fetch(`${url}/readyz`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(3_000) }).catch(() => null);
  return response?.status ?? 0;
}

/**
 * Names the steps of a long drill so that one that hangs fails with the step it was in
 * (`within`) before the test's own timeout, which names only the test.
 */
export function phases(): { phase(name: string): void; within<T>(ms: number, body: () => Promise<T>): Promise<T> } {
  let current = 'start';
  let since = Date.now();
  return {
    phase(name: string) {
      current = name;
      since = Date.now();
    },
    async within<T>(ms: number, body: () => Promise<T>): Promise<T> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stuck = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`drill stuck for ${Date.now() - since} ms in: ${current}`)), ms);
      });
      try {
        return await Promise.race([body(), stuck]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
