import type { Ack, CommandType, Envelope, HelloPayload, PlainServerFrame } from '@app/protocol';
import WebSocket from 'ws';

/**
 * A bare `/ws` client (PROTOCOL.md §11) for tests that must see the wire exactly: it records
 * every frame and the close, and sends commands awaiting their one ack.
 */
export interface PlainTestSocket {
  ws: WebSocket;
  frames: PlainServerFrame[];
  events: Envelope[];
  /** Resolves with the close code and reason, whoever closed. */
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
  const target = new URL(path, url.replace(/^http/, 'ws'));
  if (token !== undefined) target.searchParams.set('token', token);
  for (const [key, value] of Object.entries(query)) target.searchParams.set(key, value);
  const ws = new WebSocket(target);
  const frames: PlainServerFrame[] = [];
  const events: Envelope[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as PlainServerFrame;
    frames.push(frame);
    if (frame.kind === 'event') events.push(frame);
    waiters.splice(0).forEach((wake) => wake());
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  if (authFrame !== undefined) ws.send(JSON.stringify(authFrame));

  const next = <K extends PlainServerFrame['kind']>(kind: K, after = 0, predicate: (f: PlainServerFrame) => boolean = () => true) =>
    new Promise<Extract<PlainServerFrame, { kind: K }>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${kind} frame within 15 s; got ${JSON.stringify(frames.map((f) => f.kind))}`)), 15_000);
      const check = (): void => {
        const found = frames.slice(after).find((f) => f.kind === kind && predicate(f));
        if (found) {
          clearTimeout(timer);
          resolve(found as Extract<PlainServerFrame, { kind: K }>);
        } else waiters.push(check);
      };
      check();
    });

  return {
    ws,
    frames,
    events,
    closed,
    hello: () => next('hello').then(({ kind: _kind, ...hello }) => hello as HelloPayload),
    command: async <T>(type: string, payload: unknown, id = `plain-${process.pid}-${++counter}`) => {
      const from = frames.length;
      ws.send(JSON.stringify({ v: 1, id, type, payload }));
      const ack = await next('ack', from, (f) => f.kind === 'ack' && f.id === id);
      const { kind: _kind, id: _id, ...answer } = ack;
      return answer as Ack<T>;
    },
    next: (kind, after) => next(kind, after),
    close: () => ws.close(),
  };
}
