import type { Socket as NetSocket } from 'node:net';
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { cpuNow, nowUs, serveRequests } from '../bench/common';
import { Histogram, intAt, intEnd } from './stats';

/**
 * One load client process (forked by load/run.ts): holds up to ~18k sockets (the open-files
 * cap is 20k per process), each subscribed to its own stream and maybe the hot stream.
 *
 * `raw` speaks Engine.IO/Socket.IO text frames over `ws` and reads only seq, epoch, id and
 * the payload's stream index, counter and send time out of each frame, in place, without
 * parsing JSON; `sio` uses socket.io-client (to compare what the client costs). Per socket
 * and subscription, typed arrays hold the last seq and the lost/duplicate counts; every
 * delivery is checked (gapless, no duplicates) and its latency goes to a histogram.
 *
 * A socket whose connection drops reconnects to another pod (the least loaded one, as this
 * process counts) after a random delay and resubscribes with sinceSeq/epoch/lastId
 * (PROTOCOL.md §5); the replay must fill the gap. An event of a new epoch (Redis restarted)
 * makes that subscription ask for a snapshot on the same connection, as the SDK does.
 *
 * Sockets reach pod j through `routes[j]` (the pod itself, or TCP proxies in front of it for
 * the network drills; socket g takes routes[j][g mod length]); `migrate` moves every socket
 * onto new routes at a bounded rate, each resubscribing from its position.
 */
interface Plan {
  kind: 'gateway' | 'baseline';
  lib: 'raw' | 'sio';
  /** Per pod, the URLs that reach it (the pod, or the proxies in front of it). */
  routes: string[][];
  tokens: string[];
  /** Stream names by index; the hot stream (if any) is the last one. */
  streams: string[];
  /** Global socket g also watches the hot stream when g % hotEvery === 0 (0: no hot stream). */
  hotEvery: number;
  first: number;
  count: number;
  /** Source addresses; socket g binds to addrs[g % addrs.length]. */
  addrs: string[];
  concurrency: number;
  reconnectJitterMs: number;
}

interface AckReply {
  ok: boolean;
  result?: { epoch: string; seq: number; replayed: number; snapshot?: unknown };
  error?: { code: string };
}

interface Conn {
  command(event: 'command' | 'join', arg: unknown, onAck: (reply: AckReply) => void): void;
  close(): void;
  /** Force-closes the TCP connection with a reset (RST), as a broken network path would. */
  reset(): void;
}

const IDLE = 0;
const CONNECTING = 1;
const READY = 2;
const WAITING = 3;
const CONNECT_TIMEOUT_US = 20_000_000;
const MAX_ATTEMPTS = 30;
/** How often the jitter drill looks for connections due for a reset. */
const JITTER_SWEEP_MS = 50;
const ID_RING = 4096;

let plan: Plan;
let gateway = true;
let plainStreams = 0;
let hotIndex = -1;

// Per socket (index i = global index − first).
let gen: Uint32Array;
let state: Uint8Array;
let podOf: Int8Array;
let attempts: Uint8Array;
let pendingAcks: Uint8Array;
let resumeNext: Uint8Array;
let openedAt: Float64Array;
let downAt: Float64Array;
let conns: Array<Conn | null>;
// Per socket and subscription slot (k = 2i + slot; slot 0: own stream, 1: hot stream).
let lastSeq: Int32Array;
let lost: Uint32Array;
let dup: Uint32Array;
/** The subscription's epoch: an index into epochList[s] (-1: none yet on this connection). */
let subEpoch: Int16Array;
/** A subscribe for a snapshot of a new epoch is in flight on the current connection. */
let pendingSnap: Uint8Array;
/** The epoch a pending resubscribe resumed from (to tell an epoch change from a plain snapshot). */
let resumedFrom: Int16Array;
/** Events up to this seq came as the replay of the last resubscribe (for their latency). */
let replayUntil: Int32Array;
/** Events of a new epoch met while its snapshot is on the way, per subscription (rare). */
const held = new Map<number, { epoch: number; min: number; max: number; lost: number; dup: number }>();
// Per socket: when its resubscribe was sent; the route generation it connected with.
let resubSentAt: Float64Array;
let routeOf: Uint16Array;
let assigned: Uint8Array;
// Per stream, shared by this process's sockets: the epochs met (oldest first), newest seq
// seen in the newest epoch, recent event ids of the newest epoch.
let epochList: Buffer[][] = [];
let heads: Int32Array;
/** Ring of recent event ids per stream (index s * ID_RING + seq % ID_RING), for `lastId`. */
let ids: string[] = [];
let idSeqs: Int32Array;

const podAlive: boolean[] = [];
const podDownUntil: number[] = [];
/** Sockets of this process connecting or connected to each pod (for least-loaded reconnects). */
let podLoad: Int32Array;
const latency = new Histogram();
/** Publish → delivery of events that came as a replay after a resubscribe. */
const replayLatency = new Histogram();
/** Resubscribe sent → acknowledged (with its replay), per subscription. */
const resubAck = new Histogram();
/** Connection lost → every stream of the socket subscribed again (offline time included). */
const recovery = new Histogram();
const counters = {
  received: 0,
  connectFailures: 0,
  subscribeErrors: 0,
  protocolErrors: 0,
  epochChanges: 0,
  eventsBeforeAck: 0,
  unexpectedCloses: 0,
  gaveUp: 0,
  resumes: 0,
  replayed: 0,
  snapshotResyncs: 0,
  churned: 0,
  recovered: 0,
  lastRecoveredUs: 0,
  /** `draining` notices (a pod stopping gracefully). */
  drains: 0,
  /** Events of an epoch older than the subscription's (ignored). */
  staleEpochEvents: 0,
  /** Sockets moved onto new routes. */
  migrated: 0,
  /**
   * Handshakes refused UNAVAILABLE (a draining pod) and subscribes answered UNAVAILABLE or
   * TIMEOUT: the contract's "try again" (PROTOCOL.md §6); the socket reconnects (elsewhere) and resumes.
   */
  unavailable: 0,
};

/** A failed subscribe: an error, or a retry the contract allows. */
function subscribeFailed(reply: AckReply | undefined): void {
  const code = reply?.error?.code;
  if (code === 'UNAVAILABLE' || code === 'TIMEOUT') counters.unavailable++;
  else counters.subscribeErrors++;
}

const UNAVAILABLE = Buffer.from('"code":"UNAVAILABLE"');

const queue: number[] = [];
let queueHead = 0;
let inFlight = 0;
/** Sockets waiting for a reconnect timer. */
let waiting = 0;
let churnPerSecond = 0;
let churnCredit = 0;
let migratePerSecond = 0;
let migrateCredit = 0;
let migrateCursor = 0;
let routeGen = 0;
/** Jitter drill: time offline after a lost connection (0: the usual random reconnect delay). */
let offlineMs = 0;
let connectWaiter: (() => void) | null = null;

const ownStream = (i: number) => (plan.first + i) % plainStreams;
const watchesHot = (i: number) => hotIndex >= 0 && (plan.first + i) % plan.hotEvery === 0;
const slotsOf = (i: number) => (watchesHot(i) ? 2 : 1);
const slotOf = (i: number, s: number) => (s === ownStream(i) ? 0 : s === hotIndex && watchesHot(i) ? 1 : -1);

function init(p: Plan): void {
  plan = p;
  gateway = p.kind === 'gateway';
  hotIndex = p.hotEvery > 0 ? p.streams.length - 1 : -1;
  plainStreams = p.streams.length - (hotIndex >= 0 ? 1 : 0);
  const n = p.count;
  gen = new Uint32Array(n);
  state = new Uint8Array(n);
  podOf = new Int8Array(n);
  attempts = new Uint8Array(n);
  pendingAcks = new Uint8Array(n);
  resumeNext = new Uint8Array(n);
  openedAt = new Float64Array(n);
  downAt = new Float64Array(n);
  conns = new Array<Conn | null>(n).fill(null);
  lastSeq = new Int32Array(2 * n).fill(-1);
  lost = new Uint32Array(2 * n);
  dup = new Uint32Array(2 * n);
  subEpoch = new Int16Array(2 * n).fill(-1);
  pendingSnap = new Uint8Array(2 * n);
  resumedFrom = new Int16Array(2 * n).fill(-1);
  replayUntil = new Int32Array(2 * n).fill(-1);
  resubSentAt = new Float64Array(n);
  routeOf = new Uint16Array(n);
  assigned = new Uint8Array(n);
  epochList = p.streams.map(() => []);
  heads = new Int32Array(p.streams.length).fill(-1);
  ids = new Array<string>(p.streams.length * ID_RING);
  idSeqs = new Int32Array(p.streams.length * ID_RING).fill(-1);
  podLoad = new Int32Array(p.routes.length);
  p.routes.forEach((_, j) => ((podAlive[j] = true), (podDownUntil[j] = 0)));
  setInterval(housekeeping, 100).unref();
}

// ---------------------------------------------------------------------------------------
// Deliveries: the hot path.

function deliver(i: number, s: number, value: number, sentUs: number, now: number): void {
  const slot = slotOf(i, s);
  if (slot < 0) {
    counters.protocolErrors++;
    return;
  }
  counters.received++;
  latency.record(now - sentUs);
  const k = 2 * i + slot;
  if (value <= replayUntil[k]) replayLatency.record(now - sentUs);
  const last = lastSeq[k];
  if (last < 0) {
    // Baseline: a fresh join has no position; its first event sets it.
    if (gateway) counters.eventsBeforeAck++;
    lastSeq[k] = value;
  } else if (value === last + 1) lastSeq[k] = value;
  else if (value <= last) dup[k]++;
  else {
    lost[k] += value - last - 1;
    lastSeq[k] = value;
  }
}

const SEQ = Buffer.from('"seq":');
const EPOCH = Buffer.from('"epoch":"');
const ID = Buffer.from('"id":"');
const PAYLOAD = Buffer.from('"payload":{"s":');

/**
 * `42["event",{…}]` read in place: the envelope's seq, epoch and id (gateway) and the
 * payload's s, n, t. Each key is found on its own (the envelope's key order is not part of
 * the contract); the payload is ours, written `{"s":…,"n":…,"t":…,"pad":…}`.
 */
function deliverRaw(i: number, frame: Buffer): void {
  const now = nowUs();
  let seq = -1;
  let epochAt = -1;
  let p = 11;
  if (gateway) {
    const seqAt = frame.indexOf(SEQ, 11);
    epochAt = frame.indexOf(EPOCH, 11);
    p = frame.indexOf(PAYLOAD, 11);
    if (seqAt < 0 || epochAt < 0 || p < 0) return deliverParsed(i, frame.toString(), now);
    seq = intAt(frame, seqAt + 6);
    epochAt += 9;
    p += 10;
  }
  const s = intAt(frame, p + 5);
  const n = intAt(frame, intEnd + 5);
  const t = intAt(frame, intEnd + 5);
  if (s < 0 || s >= heads.length || n < 0 || t < 0 || (gateway && seq < 0)) return deliverParsed(i, frame.toString(), now);
  if (gateway) {
    const slot = slotOf(i, s);
    const e = slot < 0 ? -1 : subEpoch[2 * i + slot];
    const epoch = e < 0 ? null : epochList[s][e];
    if (!epoch || frame.compare(epoch, 0, epoch.length, epochAt, epochAt + epoch.length) !== 0 || frame[epochAt + epoch.length] !== 34) {
      const end = frame.indexOf(34, epochAt);
      return otherEpoch(i, s, frame.toString('latin1', epochAt, end < 0 ? epochAt : end), seq, t, now);
    }
    const idAt = seq > heads[s] && e === epochList[s].length - 1 ? frame.indexOf(ID, 11) : -1;
    if (idAt >= 0) remember(s, seq, frame.toString('latin1', idAt + 6, frame.indexOf(34, idAt + 6)));
  }
  deliver(i, s, gateway ? seq : n, t, now);
}

function remember(s: number, seq: number, id: string): void {
  heads[s] = seq;
  const r = s * ID_RING + (seq % ID_RING);
  ids[r] = id;
  idSeqs[r] = seq;
}

/** The index of an epoch of stream s; a new one is the newest (its id ring starts empty). */
function epochIndex(s: number, epoch: string): number {
  const list = epochList[s];
  for (let e = list.length - 1; e >= 0; e--) if (list[e].toString('latin1') === epoch) return e;
  list.push(Buffer.from(epoch, 'latin1'));
  heads[s] = -1;
  idSeqs.fill(-1, s * ID_RING, (s + 1) * ID_RING);
  return list.length - 1;
}

/**
 * An event whose epoch is not its subscription's. Before the first answer on a connection:
 * an error. An older epoch: ignored. A newer one (Redis restarted): the subscription asks
 * for a snapshot on this connection; the new epoch's events that come before its answer
 * are held (as a range) and the ones past the snapshot's seq count once it arrives.
 */
function otherEpoch(i: number, s: number, epoch: string, seq: number, sentUs: number, now: number): void {
  const slot = slotOf(i, s);
  if (slot < 0) return void counters.protocolErrors++;
  const k = 2 * i + slot;
  if (subEpoch[k] < 0) return void counters.eventsBeforeAck++;
  const e = epochIndex(s, epoch);
  if (e < subEpoch[k]) return void counters.staleEpochEvents++;
  counters.received++;
  latency.record(now - sentUs);
  const h = held.get(k);
  if (!pendingSnap[k]) {
    counters.epochChanges++;
    held.set(k, { epoch: e, min: seq, max: seq, lost: 0, dup: 0 });
    return snapshotSubscribe(i, k, s);
  }
  if (!h || e > h.epoch) return void held.set(k, { epoch: e, min: seq, max: seq, lost: 0, dup: 0 });
  if (e < h.epoch) return void counters.staleEpochEvents++;
  if (seq <= h.max) h.dup++;
  else {
    h.lost += seq - h.max - 1;
    h.max = seq;
  }
}

function snapshotSubscribe(i: number, k: number, s: number): void {
  const conn = conns[i];
  if (!conn) return;
  pendingSnap[k] = 1;
  const myGen = gen[i];
  const request = { v: 1, id: `load-${process.pid}-${i}-${myGen}-epoch-${k & 1}`, type: 'subscribe', payload: { stream: plan.streams[s] } };
  conn.command('command', request, (reply) => {
    if (gen[i] !== myGen) return;
    pendingSnap[k] = 0;
    const h = held.get(k);
    held.delete(k);
    if (!reply?.ok || !reply.result) {
      subscribeFailed(reply);
      return dropped(i, myGen, false);
    }
    counters.snapshotResyncs++;
    const e = epochIndex(s, reply.result.epoch);
    subEpoch[k] = e;
    let last = reply.result.seq;
    if (h && h.epoch === e && h.max > last) {
      if (h.min > last + 1) lost[k] += h.min - last - 1;
      lost[k] += h.lost;
      dup[k] += h.dup;
      last = h.max;
    }
    lastSeq[k] = last;
    replayUntil[k] = -1;
    if (e === epochList[s].length - 1 && reply.result.seq > heads[s]) heads[s] = reply.result.seq;
  });
}

interface Envelope {
  seq: number;
  epoch: string;
  id: string;
  payload: LoadPayload;
}
interface LoadPayload {
  s: number;
  n: number;
  t: number;
}

/** The slow path: a parsed `event` (socket.io-client, or a frame the raw reader did not expect). */
function deliverParsed(i: number, frameOrArg: string | Envelope | LoadPayload, now = nowUs()): void {
  try {
    const arg = typeof frameOrArg === 'string' ? (JSON.parse(frameOrArg.slice(2)) as [string, Envelope | LoadPayload])[1] : frameOrArg;
    if (!gateway) {
      const payload = arg as LoadPayload;
      return deliver(i, payload.s, payload.n, payload.t, now);
    }
    const envelope = arg as Envelope;
    const s = envelope.payload.s;
    const slot = slotOf(i, s);
    const e = slot < 0 ? -1 : subEpoch[2 * i + slot];
    if (e < 0 || epochList[s][e].toString('latin1') !== envelope.epoch) return otherEpoch(i, s, envelope.epoch, envelope.seq, envelope.payload.t, now);
    if (envelope.seq > heads[s] && e === epochList[s].length - 1) remember(s, envelope.seq, envelope.id);
    deliver(i, s, envelope.seq, envelope.payload.t, now);
  } catch {
    counters.protocolErrors++;
  }
}

// ---------------------------------------------------------------------------------------
// Connections.

function rawConn(i: number, myGen: number, url: string, localAddress: string, token: string | null): Conn {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`, {
    localAddress,
    perMessageDeflate: false,
    skipUTF8Validation: true,
    handshakeTimeout: 20_000,
  });
  const acks = new Map<number, (reply: AckReply) => void>();
  let nextAck = 0;
  ws.on('message', (data: Buffer) => {
    if (gen[i] !== myGen) return;
    const c0 = data[0];
    if (c0 === 52 /* 4 */) {
      const c1 = data[1];
      if (c1 === 50 /* 2 */) {
        if (data[4] === 101 /* e */ && data[5] === 118 /* v */ && data[9] === 34 /* "event" */) return deliverRaw(i, data);
        const text = data.toString();
        if (text.startsWith('42["hello"')) onConnected(i, myGen);
        else if (text.startsWith('42["draining"')) counters.drains++;
        return;
      }
      if (c1 === 51 /* 3: ack */) {
        const id = intAt(data, 2);
        const handler = acks.get(id);
        acks.delete(id);
        if (handler) handler((JSON.parse(data.toString('utf8', intEnd)) as [AckReply])[0]);
        return;
      }
      if (c1 === 48 /* 0: connected */) return gateway ? undefined : onConnected(i, myGen);
      if (c1 === 52 /* 4: connect_error */) {
        if (data.includes(UNAVAILABLE)) counters.unavailable++;
        else counters.connectFailures++;
      }
      return dropped(i, myGen, false);
    }
    if (c0 === 50 /* 2: ping */) return ws.send('3');
    if (c0 === 48 /* 0: open */) return ws.send(token ? `40${JSON.stringify({ token })}` : '40');
    if (c0 === 49 /* 1: close */) dropped(i, myGen, false);
  });
  ws.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'ECONNREFUSED') podDownUntil[podOf[i]] = nowUs() + 10_000_000;
  });
  ws.on('close', () => dropped(i, myGen, false));
  return {
    command: (event, arg, onAck) => {
      const id = nextAck++;
      acks.set(id, onAck);
      ws.send(`42${id}${JSON.stringify([event, arg])}`);
    },
    close: () => ws.terminate(),
    reset: () => {
      const tcp = (ws as unknown as { _socket?: NetSocket })._socket;
      if (tcp) tcp.resetAndDestroy();
      else ws.terminate();
    },
  };
}

function sioConn(i: number, myGen: number, url: string, localAddress: string, token: string | null): Conn {
  const socket: Socket = io(url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 20_000,
    ...(token ? { auth: { token } } : {}),
    // engine.io-client hands this to `ws` (see its websocket transport's option list).
    ...({ localAddress } as object),
  });
  socket.on('event', (arg: Envelope | LoadPayload) => {
    if (gen[i] === myGen) deliverParsed(i, arg);
  });
  socket.once(gateway ? 'hello' : 'connect', () => onConnected(i, myGen));
  socket.on('draining', () => void counters.drains++);
  socket.on('connect_error', (error: Error & { data?: { code?: string } }) => {
    if (error.data?.code === 'UNAVAILABLE') counters.unavailable++;
    else counters.connectFailures++;
    dropped(i, myGen, false);
  });
  socket.on('disconnect', () => dropped(i, myGen, false));
  return {
    command: (event, arg, onAck) => socket.emit(event, arg, onAck),
    close: () => socket.close(),
    reset: () => {
      const tcp = (socket.io.engine?.transport as unknown as { ws?: { _socket?: NetSocket } } | undefined)?.ws?._socket;
      if (tcp) tcp.resetAndDestroy();
      else socket.close();
    },
  };
}

function pickPod(i: number): number {
  const pods = plan.routes.length;
  const home = (plan.first + i) % pods;
  const now = nowUs();
  const usable = (j: number) => podAlive[j] && podDownUntil[j] < now;
  // The home pod first; after a drop, the least loaded other usable pod (as a
  // least-connections balancer would: pods restarted empty fill up first, none overflows).
  if (!resumeNext[i] && attempts[i] === 0 && usable(home)) return home;
  const choices = plan.routes.map((_, j) => j).filter((j) => usable(j) && j !== podOf[i]);
  if (choices.length > 0) return leastLoaded(choices);
  const alive = plan.routes.map((_, j) => j).filter((j) => podAlive[j]);
  return alive.length > 0 ? leastLoaded(alive) : home;
}

function leastLoaded(choices: number[]): number {
  let best = choices[Math.floor(Math.random() * choices.length)];
  for (const j of choices) if (podLoad[j] < podLoad[best]) best = j;
  return best;
}

/** The socket no longer counts on its pod. */
function unassign(i: number): void {
  if (!assigned[i]) return;
  assigned[i] = 0;
  podLoad[podOf[i]]--;
}

function open(i: number): void {
  if (state[i] === WAITING) waiting--;
  inFlight++;
  state[i] = CONNECTING;
  openedAt[i] = nowUs();
  const myGen = ++gen[i];
  const pod = pickPod(i);
  unassign(i);
  podOf[i] = pod;
  podLoad[pod]++;
  assigned[i] = 1;
  routeOf[i] = routeGen;
  const g = plan.first + i;
  const token = gateway ? plan.tokens[g % plan.tokens.length] : null;
  const make = plan.lib === 'raw' ? rawConn : sioConn;
  const urls = plan.routes[pod];
  conns[i] = make(i, myGen, urls[g % urls.length], plan.addrs[g % plan.addrs.length], token);
}

/** Connected (gateway: after `hello`): subscribe / join each stream of the socket. */
function onConnected(i: number, myGen: number): void {
  const conn = conns[i];
  if (gen[i] !== myGen || !conn) return;
  const resume = resumeNext[i] === 1;
  if (resume) {
    counters.resumes++;
    resubSentAt[i] = nowUs();
  }
  pendingAcks[i] = slotsOf(i);
  for (let slot = 0; slot < slotsOf(i); slot++) {
    const s = slot === 0 ? ownStream(i) : hotIndex;
    const k = 2 * i + slot;
    pendingSnap[k] = 0;
    held.delete(k);
    replayUntil[k] = -1;
    if (!resume) {
      lastSeq[k] = -1;
      subEpoch[k] = -1;
    }
    if (!gateway) {
      conn.command('join', plan.streams[s], (reply) => onAck(i, myGen, k, s, resume, reply));
      continue;
    }
    const since = lastSeq[k];
    const e = subEpoch[k];
    const r = s * ID_RING + (since % ID_RING);
    const lastId = since > 0 && e === epochList[s].length - 1 && idSeqs[r] === since ? ids[r] : undefined;
    // Events are checked against the subscription's epoch from the answer on; until then, none may come.
    subEpoch[k] = -1;
    const payload =
      resume && since >= 0 && e >= 0
        ? { stream: plan.streams[s], sinceSeq: since, epoch: epochList[s][e].toString('latin1'), ...(lastId ? { lastId } : {}) }
        : { stream: plan.streams[s] };
    resumedFrom[k] = e;
    conn.command('command', { v: 1, id: `load-${process.pid}-${i}-${myGen}-${slot}`, type: 'subscribe', payload }, (reply) =>
      onAck(i, myGen, k, s, resume, reply),
    );
  }
}

function onAck(i: number, myGen: number, k: number, s: number, resume: boolean, reply: AckReply): void {
  if (gen[i] !== myGen) return;
  if (!reply?.ok) {
    subscribeFailed(reply);
    return dropped(i, myGen, false);
  }
  const result = reply.result;
  if (resume) resubAck.record(nowUs() - resubSentAt[i]);
  if (gateway && result) {
    const e = epochIndex(s, result.epoch);
    subEpoch[k] = e;
    if (!resume || lastSeq[k] < 0) lastSeq[k] = result.seq;
    else if (result.snapshot !== undefined) {
      counters.snapshotResyncs++;
      // Resumed from an epoch that is gone (Redis restarted while the socket was away).
      if (resumedFrom[k] >= 0 && resumedFrom[k] !== e) counters.epochChanges++;
      lastSeq[k] = result.seq;
    } else {
      counters.replayed += result.replayed;
      if (result.replayed > 0) replayUntil[k] = result.seq;
    }
    if (e === epochList[s].length - 1 && result.seq > heads[s]) heads[s] = result.seq;
  }
  if (--pendingAcks[i] > 0) return;
  state[i] = READY;
  attempts[i] = 0;
  resumeNext[i] = 0;
  inFlight--;
  if (downAt[i] > 0) {
    const now = nowUs();
    counters.recovered++;
    counters.lastRecoveredUs = Math.max(counters.lastRecoveredUs, now);
    recovery.record(now - downAt[i]);
    downAt[i] = 0;
  }
  pump();
}

/** Any end of a connection we did not ask for (the handlers of an older generation are ignored). */
function dropped(i: number, myGen: number, timedOut: boolean): void {
  if (gen[i] !== myGen) return;
  gen[i]++;
  conns[i]?.close();
  conns[i] = null;
  unassign(i);
  const wasReady = state[i] === READY;
  if (state[i] === CONNECTING) inFlight--;
  state[i] = WAITING;
  waiting++;
  resumeNext[i] = 1;
  let delayMs: number;
  if (wasReady) {
    counters.unexpectedCloses++;
    if (downAt[i] === 0) downAt[i] = nowUs();
    attempts[i] = 0;
    if (offlineMs > 0) {
      // Jitter drill: the connection was cut on purpose; the pod is fine. Stay away ~offlineMs.
      delayMs = offlineMs * (0.75 + Math.random() / 2);
    } else {
      podDownUntil[podOf[i]] = nowUs() + 3_000_000;
      delayMs = Math.random() * plan.reconnectJitterMs;
    }
  } else {
    if (timedOut) counters.connectFailures++;
    if (++attempts[i] > MAX_ATTEMPTS) {
      counters.gaveUp++;
      state[i] = IDLE;
      waiting--;
      return pump();
    }
    delayMs = Math.random() * Math.min(5_000, 100 * 2 ** attempts[i]);
  }
  setTimeout(() => enqueue(i), delayMs);
  pump();
}

/**
 * Jitter drill, from the client side: for `durationMs`, every connection is reset (TCP RST)
 * once it has been ready (connected and subscribed) for a random minMs–maxMs (one ready before
 * the drill, at a random time within maxMs of its start). The pod sees what a broken path
 * shows it, without a proxy in front of every delivery. A connection still opening is left
 * alone: on a saturated machine opening can take longer than minMs, and resetting it again
 * would only pile reconnects up. Answers how many connections it reset.
 */
function jitter(minMs: number, maxMs: number, durationMs: number): Promise<{ forceClosed: number }> {
  const start = nowUs();
  // Per socket: the connection (its gen) the deadline belongs to, and the deadline (µs).
  const deadlineGen = new Float64Array(plan.count).fill(-1);
  const deadline = new Float64Array(plan.count);
  let forceClosed = 0;
  for (let i = 0; i < plan.count; i++) {
    if (!conns[i] || state[i] !== READY) continue;
    deadlineGen[i] = gen[i];
    deadline[i] = start + Math.random() * maxMs * 1000;
  }
  return new Promise((resolve) => {
    const sweep = setInterval(() => {
      const now = nowUs();
      for (let i = 0; i < plan.count; i++) {
        const conn = conns[i];
        if (!conn || state[i] !== READY) continue;
        if (deadlineGen[i] !== gen[i]) {
          // First seen ready (within a sweep of it becoming so).
          deadlineGen[i] = gen[i];
          deadline[i] = now + (minMs + Math.random() * (maxMs - minMs)) * 1000;
        }
        if (now < deadline[i]) continue;
        // Once: the connection's close comes back as an event (then `dropped` moves it on).
        deadline[i] = Number.POSITIVE_INFINITY;
        forceClosed++;
        conn.reset();
      }
      if (now - start < durationMs * 1000) return;
      clearInterval(sweep);
      resolve({ forceClosed });
    }, JITTER_SWEEP_MS);
  });
}

function enqueue(i: number): void {
  queue.push(i);
  pump();
}

function pump(): void {
  while (inFlight < plan.concurrency && queueHead < queue.length) open(queue[queueHead++]);
  if (queueHead > 4096 && queueHead * 2 > queue.length) {
    queue.splice(0, queueHead);
    queueHead = 0;
  }
  if (connectWaiter && inFlight === 0 && waiting === 0 && queueHead >= queue.length) connectWaiter();
}

/** Every 100 ms: connection attempts that hang are dropped; churn closes and reopens sockets. */
function housekeeping(): void {
  const now = nowUs();
  for (let i = 0; i < plan.count; i++) if (state[i] === CONNECTING && now - openedAt[i] > CONNECT_TIMEOUT_US) dropped(i, gen[i], true);
  churnCredit += churnPerSecond / 10;
  for (let tries = 0; churnCredit >= 1 && tries < 100; tries++) {
    const i = Math.floor(Math.random() * plan.count);
    if (state[i] !== READY) continue;
    churnCredit--;
    counters.churned++;
    gen[i]++;
    conns[i]?.close();
    conns[i] = null;
    unassign(i);
    state[i] = IDLE;
    resumeNext[i] = 0;
    enqueue(i);
  }
  if (churnCredit > 10) churnCredit = 10;
  migrate(now);
  pump();
}

/** Moves connected sockets still on old routes onto the current ones, resuming from their position. */
function migrate(now: number): void {
  if (migratePerSecond <= 0) return;
  migrateCredit = Math.min(migrateCredit + migratePerSecond / 10, Math.max(10, migratePerSecond));
  for (let scanned = 0; migrateCredit >= 1 && scanned < plan.count; scanned++) {
    const i = migrateCursor;
    migrateCursor = (migrateCursor + 1) % plan.count;
    if (state[i] !== READY || routeOf[i] === routeGen) continue;
    migrateCredit--;
    counters.migrated++;
    gen[i]++;
    conns[i]?.close();
    conns[i] = null;
    unassign(i);
    state[i] = IDLE;
    resumeNext[i] = 1;
    downAt[i] = now;
    enqueue(i);
  }
}

function stats() {
  const states = [0, 0, 0, 0];
  const perPod = plan.routes.map(() => 0);
  let down = 0;
  let onOldRoutes = 0;
  let offEpoch = 0;
  for (let i = 0; i < plan.count; i++) {
    states[state[i]]++;
    if (state[i] === READY) perPod[podOf[i]]++;
    if (downAt[i] > 0) down++;
    if (state[i] === READY && routeOf[i] !== routeGen) onOldRoutes++;
    if (gateway && state[i] === READY)
      for (let slot = 0; slot < slotsOf(i); slot++) {
        const k = 2 * i + slot;
        const s = slot === 0 ? ownStream(i) : hotIndex;
        if (pendingSnap[k] || subEpoch[k] !== epochList[s].length - 1) offEpoch++;
      }
  }
  let lostTotal = 0;
  let dupTotal = 0;
  let slotsWithLoss = 0;
  for (let k = 0; k < lost.length; k++) {
    lostTotal += lost[k];
    dupTotal += dup[k];
    if (lost[k] > 0 || dup[k] > 0) slotsWithLoss++;
  }
  const cpu = cpuNow();
  return {
    ...counters,
    lost: lostTotal,
    dup: dupTotal,
    slotsWithLoss,
    idle: states[IDLE],
    connecting: states[CONNECTING],
    ready: states[READY],
    waiting: states[WAITING],
    /** Sockets that lost their connection and have not resubscribed yet. */
    down,
    /** Connected sockets still on the routes before the last `pods` update (see migrate). */
    onOldRoutes,
    /** Subscriptions not (yet) on their stream's newest epoch, or waiting for its snapshot. */
    offEpoch,
    /** Epochs met, added up over the streams. */
    epochs: epochList.reduce((sum, list) => sum + list.length, 0),
    perPod,
    cpuUs: cpu.userUs + cpu.systemUs,
    rssKb: Math.round(process.memoryUsage().rss / 1024),
  };
}
export type ClientStats = ReturnType<typeof stats>;

// ---------------------------------------------------------------------------------------
// Burst watchers (the publish-only phase): a few sockets per pod that watch the burst
// streams, so every pod subscribes to each of them (Redis fans every event out to every
// pod, as for a stream watched everywhere) while deliveries stay a few per event.

interface BurstPlan {
  /** Per pod, the URL to reach it (pods that are down: null). */
  pods: Array<string | null>;
  streams: string[];
  /** Stream index of streams[0] in the payloads (`s`). */
  firstIndex: number;
  token: string;
  /** Subscriptions per watcher socket (≤ the gateway's command rate per second). */
  perSocket: number;
}

let burst: {
  plan: BurstPlan;
  sockets: Socket[];
  /** Per watcher socket and burst stream: last seq (gateway) or counter (baseline). */
  last: Int32Array;
  /** Per watcher socket and burst stream: subscribed. */
  watched: Uint8Array;
  lost: number;
  dup: number;
  received: number;
  latency: Histogram;
} | null = null;

async function burstWatch(p: BurstPlan): Promise<{ sockets: number; subscriptions: number }> {
  const groups: string[][] = [];
  for (let j = 0; j < p.streams.length; j += p.perSocket) groups.push(p.streams.slice(j, j + p.perSocket));
  const targets = p.pods.flatMap((url) => (url ? groups.map((streams) => ({ url, streams })) : []));
  const slots = targets.length * p.streams.length;
  const state = {
    plan: p,
    sockets: [] as Socket[],
    last: new Int32Array(slots).fill(-1),
    watched: new Uint8Array(slots),
    lost: 0,
    dup: 0,
    received: 0,
    latency: new Histogram(),
  };
  burst = state;
  await Promise.all(
    targets.map(
      ({ url, streams }, w) =>
        new Promise<void>((resolve, reject) => {
          const socket: Socket = io(url, {
            transports: ['websocket'],
            reconnection: false,
            forceNew: true,
            timeout: 20_000,
            ...(gateway ? { auth: { token: p.token } } : {}),
          });
          state.sockets.push(socket);
          socket.on('event', (arg: Envelope | LoadPayload) => {
            const now = nowUs();
            const payload = gateway ? (arg as Envelope).payload : (arg as LoadPayload);
            const value = gateway ? (arg as Envelope).seq : payload.n;
            const b = payload.s - p.firstIndex;
            if (b < 0 || b >= p.streams.length) return;
            state.received++;
            state.latency.record(now - payload.t);
            const slot = w * p.streams.length + b;
            const last = state.last[slot];
            if (last < 0 || value === last + 1) state.last[slot] = value;
            else if (value <= last) state.dup++;
            else {
              state.lost += value - last - 1;
              state.last[slot] = value;
            }
          });
          socket.once('connect_error', (error) => reject(error));
          socket.once(gateway ? 'hello' : 'connect', () => {
            let pending = streams.length;
            for (const stream of streams) {
              const done = (reply: AckReply) => {
                if (!reply?.ok) return reject(new Error(`burst watcher: subscribe ${stream} failed: ${JSON.stringify(reply)}`));
                const slot = w * p.streams.length + p.streams.indexOf(stream);
                state.watched[slot] = 1;
                if (gateway && reply.result) state.last[slot] = reply.result.seq;
                if (--pending === 0) resolve();
              };
              if (gateway) socket.emit('command', { v: 1, id: `burst-${process.pid}-${w}-${stream}`, type: 'subscribe', payload: { stream } }, done);
              else socket.emit('join', stream, done);
            }
          });
        }),
    ),
  );
  return { sockets: targets.length, subscriptions: targets.reduce((n, t) => n + t.streams.length, 0) };
}

/**
 * The publish-only phase's result, once every watched subscription reached its stream's last
 * seq (`finals`) — deliveries are still in flight for a while after the last publish on a
 * loaded machine — or after `settleMs`: what is still short then counts as behind.
 */
async function burstResult(finals: number[], settleMs: number) {
  const state = burst;
  if (!state) return null;
  const n = state.plan.streams.length;
  const behindNow = () => {
    let behind = 0;
    state.last.forEach((last, slot) => {
      if (state.watched[slot] && finals[slot % n] > 0 && last < finals[slot % n]) behind++;
    });
    return behind;
  };
  const deadline = Date.now() + settleMs;
  while (behindNow() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  burst = null;
  for (const socket of state.sockets) socket.close();
  const behind = behindNow();
  return {
    received: state.received,
    lost: state.lost,
    dup: state.dup,
    behind,
    latency: { counts: state.latency.counts, total: state.latency.total, maxUs: state.latency.maxUs },
  };
}

serveRequests({
  init: (request) => init(request.plan as Plan),
  /** Opens every socket not open yet; answers once none is connecting any more. */
  connect: () =>
    new Promise((resolve) => {
      const started = nowUs();
      connectWaiter = () => {
        connectWaiter = null;
        resolve({ ms: (nowUs() - started) / 1000 });
      };
      for (let i = 0; i < plan.count; i++) if (state[i] === IDLE) queue.push(i);
      pump();
    }),
  stats: () => stats(),
  histogram: (request) => {
    const h = { latency, replay: replayLatency, resubscribe: resubAck, recovery }[String(request.which ?? 'latency')] ?? latency;
    const snapshot = { counts: h.counts.slice(), total: h.total, maxUs: h.maxUs };
    if (request.reset === true) h.reset();
    return snapshot;
  },
  churn: (request) => {
    churnPerSecond = Number(request.perSecond) || 0;
    churnCredit = 0;
  },
  /** Which pods are up; with `routes`, new ways to reach them (sockets move on `migrate`). */
  pods: (request) => {
    const alive = request.alive as boolean[];
    alive.forEach((a, j) => (podAlive[j] = a));
    if (request.routes) {
      plan.routes = request.routes as string[][];
      routeGen++;
    }
  },
  migrate: (request) => {
    migratePerSecond = Number(request.perSecond) || 0;
    migrateCredit = 0;
  },
  offline: (request) => {
    offlineMs = Number(request.ms) || 0;
  },
  jitter: (request) => jitter(Number(request.minMs), Number(request.maxMs), Number(request.durationMs)),
  burstWatch: (request) => burstWatch(request as unknown as BurstPlan),
  burstResult: (request) => burstResult(request.finals as number[], Number(request.settleMs ?? 30_000)),
  /** Final check: every subscription is exactly at the stream's last published seq. */
  verify: (request) => {
    const finals = request.finals as number[];
    let checked = 0;
    let behind = 0;
    let missing = 0;
    let ahead = 0;
    let unknown = 0;
    for (let i = 0; i < plan.count; i++) {
      if (state[i] !== READY) continue;
      for (let slot = 0; slot < slotsOf(i); slot++) {
        const k = 2 * i + slot;
        const s = slot === 0 ? ownStream(i) : hotIndex;
        const want = finals[s];
        checked++;
        if (lastSeq[k] < 0) unknown++;
        else if (gateway && (pendingSnap[k] || subEpoch[k] !== epochList[s].length - 1)) {
          // Still on an older epoch: behind whatever its seq says.
          behind++;
          missing += Math.max(1, want - lastSeq[k]);
        } else if (lastSeq[k] < want) {
          behind++;
          missing += want - lastSeq[k];
        } else if (lastSeq[k] > want) ahead++;
      }
    }
    return { checked, behind, missing, ahead, unknown, notReady: plan.count - stats().ready };
  },
  close: () => {
    churnPerSecond = 0;
    for (let i = 0; i < plan.count; i++) {
      gen[i]++;
      conns[i]?.close();
      conns[i] = null;
      unassign(i);
      state[i] = IDLE;
    }
    waiting = 0;
    inFlight = 0;
    for (const w of burst?.sockets ?? []) w.close();
  },
});
process.send?.({ ready: true });
