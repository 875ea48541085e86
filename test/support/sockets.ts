import type { Ack, ClientToServerEvents, CommandType, Envelope, HelloPayload, ServerToClientEvents } from '@app/protocol';
import { io, type Socket } from 'socket.io-client';

export type RawSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/**
 * A plain Socket.IO client for tests that must see the wire exactly (the SDK in libs/client
 * is tested on its own). It records every `event` envelope it receives.
 */
export interface TestSocket {
  socket: RawSocket;
  hello: HelloPayload;
  events: Envelope[];
  /** Every other server event, in arrival order, from the first frame on. */
  received: Array<{ event: string; args: unknown[] }>;
  command<T = unknown>(type: CommandType | string, payload: unknown, id?: string): Promise<Ack<T>>;
  close(): void;
}

let commandCounter = 0;

export async function connectSocket(url: string, token: string, options: { query?: Record<string, string> } = {}): Promise<TestSocket> {
  const socket: RawSocket = io(url, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true, query: options.query });
  const events: Envelope[] = [];
  const received: Array<{ event: string; args: unknown[] }> = [];
  socket.on('event', (envelope) => events.push(envelope));
  socket.onAny((event: string, ...args: unknown[]) => {
    if (event !== 'event') received.push({ event, args });
  });
  const hello = await new Promise<HelloPayload>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no hello from ${url} within 10 s`)), 10_000);
    socket.once('hello', (payload) => {
      clearTimeout(timer);
      socket.off('connect_error');
      resolve(payload);
    });
    socket.once('connect_error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  return {
    socket,
    hello,
    events,
    received,
    command: (type, payload, id = `cmd-${process.pid}-${++commandCounter}`) =>
      socket.timeout(15_000).emitWithAck('command', { v: 1, id, type, payload } as never) as Promise<Ack<never>>,
    close: () => socket.close(),
  };
}

/** Seqs received for one stream, in arrival order. */
export function seqsOf(events: Envelope[], stream: string): number[] {
  return events.filter((e) => e.stream === stream).map((e) => e.seq);
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** The socket without the protocol's typings, to send what a well-behaved client would not. */
export interface LooseSocket {
  emit(event: string, ...args: unknown[]): void;
  timeout(ms: number): { emitWithAck(event: string, ...args: unknown[]): Promise<unknown> };
}
export function loose(socket: RawSocket): LooseSocket {
  return socket as unknown as LooseSocket;
}
