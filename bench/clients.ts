import { io, type Socket } from 'socket.io-client';
import { type BenchPayload, cpuNow, nowUs, serveRequests } from './common';

/**
 * A process holding bench client sockets (forked by bench/run.ts). It counts every `event`
 * it receives and, when asked, records publish→receive latency from the payload's
 * timestamp. Sockets are held in named groups so both paths can stay connected while only
 * one of them is driven.
 */
type Kind = 'gateway' | 'baseline';

interface Envelope {
  seq: number;
  payload: BenchPayload;
}

const groups = new Map<string, Socket[]>();

let received = 0;
let firstUs = 0;
let lastUs = 0;
let orderErrors = 0;
let sampling = false;
let samples: number[] = [];
let frameBytes = 0;

function onDelivery(sentUs: number, message: unknown): void {
  const now = nowUs();
  if (received === 0) {
    firstUs = now;
    // The text frame is `42["event",<message>]`; measured once per run, off the hot path.
    frameBytes = 2 + JSON.stringify(['event', message]).length;
  }
  received++;
  lastUs = now;
  if (sampling) samples.push(now - sentUs);
}

function connectOne(kind: Kind, url: string, token: string, target: string, index: number): Promise<Socket> {
  const socket = io(url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 20_000,
    ...(kind === 'gateway' ? { auth: { token } } : {}),
  });
  if (kind === 'gateway') {
    // Per socket: the protocol promises gapless, ordered seqs — check it while we count.
    let lastSeq = 0;
    socket.on('event', (envelope: Envelope) => {
      if (lastSeq !== 0 && envelope.seq !== lastSeq + 1) orderErrors++;
      lastSeq = envelope.seq;
      onDelivery(envelope.payload.sentUs, envelope);
    });
  } else {
    socket.on('event', (payload: BenchPayload) => onDelivery(payload.sentUs, payload));
  }
  return new Promise<Socket>((resolve, reject) => {
    const fail = (error: unknown) => {
      socket.close();
      reject(error instanceof Error ? error : new Error(String(error)));
    };
    socket.once('connect_error', fail);
    const join = async () => {
      socket.off('connect_error', fail);
      try {
        const ack = (
          kind === 'gateway'
            ? await socket
                .timeout(20_000)
                .emitWithAck('command', { v: 1, id: `bench-${process.pid}-${index}-${Date.now()}`, type: 'subscribe', payload: { stream: target } })
            : await socket.timeout(20_000).emitWithAck('join', target)
        ) as { ok: boolean; error?: unknown };
        if (!ack.ok) throw new Error(`join refused: ${JSON.stringify(ack)}`);
        resolve(socket);
      } catch (error) {
        fail(error);
      }
    };
    // The gateway's first packet is `hello`; the subscribe goes after it, as a dashboard does.
    socket.once(kind === 'gateway' ? 'hello' : 'connect', () => void join());
  });
}

serveRequests({
  connect: async (request) => {
    const group = String(request.group);
    const kind = request.kind as Kind;
    const count = Number(request.count);
    const concurrency = Number(request.concurrency ?? 100);
    const sockets = groups.get(group) ?? [];
    groups.set(group, sockets);
    const started = Date.now();
    for (let i = 0; i < count; i += concurrency) {
      const wave = Array.from({ length: Math.min(concurrency, count - i) }, (_, j) =>
        connectOne(kind, String(request.url), String(request.token ?? ''), String(request.target), i + j),
      );
      sockets.push(...(await Promise.all(wave)));
    }
    return { connected: sockets.length, ms: Date.now() - started };
  },
  close: (request) => {
    const group = String(request.group);
    for (const socket of groups.get(group) ?? []) socket.close();
    groups.delete(group);
    return { closed: group };
  },
  reset: (request) => {
    // The last run's samples (up to a few hundred thousand) are garbage now: collect them
    // here rather than in the middle of the next run's measurement.
    samples = [];
    (globalThis as { gc?: () => void }).gc?.();
    received = 0;
    firstUs = 0;
    lastUs = 0;
    orderErrors = 0;
    sampling = request.sample === true;
    return { cpu: cpuNow() };
  },
  stats: (request) => ({
    received,
    firstUs,
    lastUs,
    orderErrors,
    frameBytes,
    cpu: cpuNow(),
    ...(request.samples === true ? { samples: Float64Array.from(samples) } : {}),
  }),
  cpu: () => cpuNow(),
});
process.send?.({ ready: true });
