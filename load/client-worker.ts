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
 * A socket whose connection drops reconnects to another pod after a random delay and
 * resubscribes with sinceSeq/epoch/lastId (PROTOCOL.md §5); the replay must fill the gap.
 */
interface Plan {
  kind: 'gateway' | 'baseline';
  lib: 'raw' | 'sio';
  pods: string[];
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
}

const IDLE = 0;
const CONNECTING = 1;
const READY = 2;
const WAITING = 3;
const CONNECT_TIMEOUT_US = 20_000_000;
const MAX_ATTEMPTS = 30;
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
// Per stream, shared by this process's sockets: epoch, newest seq seen, recent event ids.
let epochs: Array<Buffer | null> = [];
let heads: Int32Array;
/** Ring of recent event ids per stream (index s * ID_RING + seq % ID_RING), for `lastId`. */
let ids: string[] = [];
let idSeqs: Int32Array;

const podAlive: boolean[] = [];
const podDownUntil: number[] = [];
const latency = new Histogram();
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
};

const queue: number[] = [];
let queueHead = 0;
let inFlight = 0;
/** Sockets waiting for a reconnect timer. */
let waiting = 0;
let churnPerSecond = 0;
let churnCredit = 0;
let connectWaiter: (() => void) | null = null;

const ownStream = (i: number) => (plan.first + i) % plainStreams;
const watchesHot = (i: number) => hotIndex >= 0 && (plan.first + i) % plan.hotEvery === 0;
const slotsOf = (i: number) => (watchesHot(i) ? 2 : 1);

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
  epochs = p.streams.map(() => null);
  heads = new Int32Array(p.streams.length);
  ids = new Array<string>(p.streams.length * ID_RING);
  idSeqs = new Int32Array(p.streams.length * ID_RING).fill(-1);
  p.pods.forEach((_, j) => ((podAlive[j] = true), (podDownUntil[j] = 0)));
  setInterval(housekeeping, 100).unref();
}

// ---------------------------------------------------------------------------------------
// Deliveries: the hot path.

function deliver(i: number, s: number, value: number, sentUs: number, now: number): void {
  const slot = s === ownStream(i) ? 0 : s === hotIndex && watchesHot(i) ? 1 : -1;
  if (slot < 0) {
    counters.protocolErrors++;
    return;
  }
  counters.received++;
  latency.record(now - sentUs);
  const k = 2 * i + slot;
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
    const epoch = epochs[s];
    if (!epoch || frame.compare(epoch, 0, epoch.length, epochAt, epochAt + epoch.length) !== 0 || frame[epochAt + epoch.length] !== 34) {
      counters.protocolErrors++;
      return;
    }
    const idAt = seq > heads[s] ? frame.indexOf(ID, 11) : -1;
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
    if (epochs[s]?.toString('latin1') !== envelope.epoch) {
      counters.protocolErrors++;
      return;
    }
    if (envelope.seq > heads[s]) remember(s, envelope.seq, envelope.id);
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
      if (c1 === 52 /* 4: connect_error */) counters.connectFailures++;
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
  socket.on('connect_error', () => {
    counters.connectFailures++;
    dropped(i, myGen, false);
  });
  socket.on('disconnect', () => dropped(i, myGen, false));
  return {
    command: (event, arg, onAck) => socket.emit(event, arg, onAck),
    close: () => socket.close(),
  };
}

function pickPod(i: number): number {
  const pods = plan.pods.length;
  const home = (plan.first + i) % pods;
  const now = nowUs();
  const usable = (j: number) => podAlive[j] && podDownUntil[j] < now;
  // The home pod first; after a drop, any other usable pod at random.
  if (!resumeNext[i] && attempts[i] === 0 && usable(home)) return home;
  const choices = plan.pods.map((_, j) => j).filter((j) => usable(j) && j !== podOf[i]);
  if (choices.length > 0) return choices[Math.floor(Math.random() * choices.length)];
  const alive = plan.pods.map((_, j) => j).filter((j) => podAlive[j]);
  return alive.length > 0 ? alive[Math.floor(Math.random() * alive.length)] : home;
}

function open(i: number): void {
  if (state[i] === WAITING) waiting--;
  inFlight++;
  state[i] = CONNECTING;
  openedAt[i] = nowUs();
  const myGen = ++gen[i];
  const pod = pickPod(i);
  podOf[i] = pod;
  const g = plan.first + i;
  const token = gateway ? plan.tokens[g % plan.tokens.length] : null;
  const make = plan.lib === 'raw' ? rawConn : sioConn;
  conns[i] = make(i, myGen, plan.pods[pod], plan.addrs[g % plan.addrs.length], token);
}

/** Connected (gateway: after `hello`): subscribe / join each stream of the socket. */
function onConnected(i: number, myGen: number): void {
  const conn = conns[i];
  if (gen[i] !== myGen || !conn) return;
  const resume = resumeNext[i] === 1;
  if (resume) counters.resumes++;
  pendingAcks[i] = slotsOf(i);
  for (let slot = 0; slot < slotsOf(i); slot++) {
    const s = slot === 0 ? ownStream(i) : hotIndex;
    const k = 2 * i + slot;
    if (!resume) lastSeq[k] = -1;
    if (!gateway) {
      conn.command('join', plan.streams[s], (reply) => onAck(i, myGen, k, s, resume, reply));
      continue;
    }
    const since = lastSeq[k];
    const epoch = epochs[s];
    const r = s * ID_RING + (since % ID_RING);
    const lastId = since > 0 && idSeqs[r] === since ? ids[r] : undefined;
    const payload =
      resume && since >= 0 && epoch
        ? { stream: plan.streams[s], sinceSeq: since, epoch: epoch.toString('latin1'), ...(lastId ? { lastId } : {}) }
        : { stream: plan.streams[s] };
    conn.command('command', { v: 1, id: `load-${process.pid}-${i}-${myGen}-${slot}`, type: 'subscribe', payload }, (reply) =>
      onAck(i, myGen, k, s, resume, reply),
    );
  }
}

function onAck(i: number, myGen: number, k: number, s: number, resume: boolean, reply: AckReply): void {
  if (gen[i] !== myGen) return;
  if (!reply?.ok) {
    counters.subscribeErrors++;
    return dropped(i, myGen, false);
  }
  const result = reply.result;
  if (gateway && result) {
    const known = epochs[s];
    if (!known || known.toString('latin1') !== result.epoch) {
      if (known) counters.epochChanges++;
      epochs[s] = Buffer.from(result.epoch, 'latin1');
      heads[s] = result.seq;
    }
    if (!resume || lastSeq[k] < 0) lastSeq[k] = result.seq;
    else if (result.snapshot !== undefined) {
      counters.snapshotResyncs++;
      lastSeq[k] = result.seq;
    } else counters.replayed += result.replayed;
    if (result.seq > heads[s]) heads[s] = result.seq;
  }
  if (--pendingAcks[i] > 0) return;
  state[i] = READY;
  attempts[i] = 0;
  resumeNext[i] = 0;
  inFlight--;
  if (downAt[i] > 0) {
    counters.recovered++;
    counters.lastRecoveredUs = Math.max(counters.lastRecoveredUs, nowUs());
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
  const wasReady = state[i] === READY;
  if (state[i] === CONNECTING) inFlight--;
  state[i] = WAITING;
  waiting++;
  resumeNext[i] = 1;
  let delayMs: number;
  if (wasReady) {
    counters.unexpectedCloses++;
    if (downAt[i] === 0) downAt[i] = nowUs();
    podDownUntil[podOf[i]] = nowUs() + 3_000_000;
    attempts[i] = 0;
    delayMs = Math.random() * plan.reconnectJitterMs;
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
    state[i] = IDLE;
    resumeNext[i] = 0;
    enqueue(i);
  }
  if (churnCredit > 10) churnCredit = 10;
  pump();
}

function stats() {
  const states = [0, 0, 0, 0];
  const perPod = plan.pods.map(() => 0);
  let down = 0;
  for (let i = 0; i < plan.count; i++) {
    states[state[i]]++;
    if (state[i] === READY) perPod[podOf[i]]++;
    if (downAt[i] > 0) down++;
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
    perPod,
    cpuUs: cpu.userUs + cpu.systemUs,
    rssKb: Math.round(process.memoryUsage().rss / 1024),
  };
}
export type ClientStats = ReturnType<typeof stats>;

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
    const snapshot = { counts: latency.counts.slice(), total: latency.total, maxUs: latency.maxUs };
    if (request.reset === true) latency.reset();
    return snapshot;
  },
  churn: (request) => {
    churnPerSecond = Number(request.perSecond) || 0;
    churnCredit = 0;
  },
  pods: (request) => {
    const alive = request.alive as boolean[];
    alive.forEach((a, j) => (podAlive[j] = a));
  },
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
        const want = finals[slot === 0 ? ownStream(i) : hotIndex];
        checked++;
        if (lastSeq[k] < 0) unknown++;
        else if (lastSeq[k] < want) {
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
      state[i] = IDLE;
    }
    waiting = 0;
    inFlight = 0;
  },
});
process.send?.({ ready: true });
