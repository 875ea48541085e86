import type { Ack, CommandType, Envelope, HelloPayload, PlainServerFrame } from '@app/protocol';
import WebSocket from 'ws';

/**
 * A bare JSON-frame WebSocket client for tests that must see the wire exactly: it records
 * every frame it receives (parsed) and the close, and waits for frames by predicate. `/ws`
 * (PROTOCOL.md §11) and the compatibility endpoints (§13) are both driven through it.
 */
export interface JsonTestSocket<F> {
  ws: WebSocket;
  frames: F[];
  /** Resolves with the close code and reason, whoever closed. */
  closed: Promise<{ code: number; reason: string }>;
  send(frame: unknown): void;
  /** The first frame at index `after` or later that matches (already received or to come). */
  next<T extends F = F>(match: (frame: F) => boolean, after?: number, what?: string): Promise<T>;
  close(): void;
}

/** Opens a JSON-frame socket on `path` of a gateway (`http://…` URL); the token goes in the query. */
export async function openJson<F>(
  url: string,
  { token, query = {}, path, onFrame }: { token?: string; query?: Record<string, string>; path: string; onFrame?: (frame: F) => void },
): Promise<JsonTestSocket<F>> {
  const target = new URL(path, url.replace(/^http/, 'ws'));
  if (token !== undefined) target.searchParams.set('token', token);
  for (const [key, value] of Object.entries(query)) target.searchParams.set(key, value);
  const ws = new WebSocket(target);
  const frames: F[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as F;
    frames.push(frame);
    onFrame?.(frame);
    waiters.splice(0).forEach((wake) => wake());
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });

  const next = <T extends F>(match: (frame: F) => boolean, after = 0, what = 'a matching frame') =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within 20 s; got ${JSON.stringify(frames).slice(-2000)}`)), 20_000);
      const check = (): void => {
        const found = frames.slice(after).find(match);
        if (found) {
          clearTimeout(timer);
          resolve(found as T);
        } else waiters.push(check);
      };
      check();
    });

  return { ws, frames, closed, send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)), next, close: () => ws.close() };
}

/**
 * A `/ws` client (PROTOCOL.md §11): frames by `kind`, and commands awaiting their one ack.
 */
export interface PlainTestSocket {
  ws: WebSocket;
  frames: PlainServerFrame[];
  events: Envelope[];
  closed: Promise<{ code: number; reason: string }>;
  hello(): Promise<HelloPayload>;
  command<T = unknown>(type: CommandType | string, payload: unknown, id?: string): Promise<Ack<T>>;
  /** The next frame of a kind (already received or to come). */
  next<K extends PlainServerFrame['kind']>(kind: K, after?: number): Promise<Extract<PlainServerFrame, { kind: K }>>;
  close(): void;
}

let counter = 0;

/** Opens `/ws` on a gateway (`http://…` URL); the token goes in the query unless `authFrame` is given. */
export async function openPlain(
  url: string,
  { token, authFrame, query = {}, path = '/ws' }: { token?: string; authFrame?: unknown; query?: Record<string, string>; path?: string },
): Promise<PlainTestSocket> {
  const events: Envelope[] = [];
  const socket = await openJson<PlainServerFrame>(url, { token, query, path, onFrame: (frame) => frame.kind === 'event' && events.push(frame) });
  if (authFrame !== undefined) socket.send(authFrame);
  const next = <K extends PlainServerFrame['kind']>(kind: K, after = 0, match: (f: PlainServerFrame) => boolean = () => true) =>
    socket.next<Extract<PlainServerFrame, { kind: K }>>((f) => f.kind === kind && match(f), after, `${kind} frame`);

  return {
    ws: socket.ws,
    frames: socket.frames,
    events,
    closed: socket.closed,
    hello: () => next('hello').then(({ kind: _kind, ...hello }) => hello as HelloPayload),
    command: async <T>(type: string, payload: unknown, id = `plain-${process.pid}-${++counter}`) => {
      const from = socket.frames.length;
      socket.send({ v: 1, id, type, payload });
      const ack = await next('ack', from, (f) => f.kind === 'ack' && f.id === id);
      const { kind: _kind, id: _id, ...answer } = ack;
      return answer as Ack<T>;
    },
    next: (kind, after) => next(kind, after),
    close: socket.close,
  };
}
