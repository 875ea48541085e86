import type { AddressInfo } from 'node:net';
import type { Ack } from '@app/protocol';
import { waitFor } from '@app/runtime';
import WebSocket, { WebSocketServer } from 'ws';
import type { TransportClose, TransportHandlers } from '../transport';
import { classifyClose, plainWsUrl, webSocketTransport } from './websocket';

describe('plainWsUrl', () => {
  it.each([
    ['http://gw:3000', 'ws://gw:3000/ws?token=t'],
    ['https://gw.example', 'wss://gw.example/ws?token=t'],
    ['ws://gw:3000/', 'ws://gw:3000/ws?token=t'],
    ['https://edge.example/realtime/ws', 'wss://edge.example/realtime/ws?token=t'],
  ])('%s → %s', (url, expected) => {
    expect(plainWsUrl({ url, token: 't' })).toBe(expected);
  });

  it('escapes the token and adds resume_session', () => {
    expect(plainWsUrl({ url: 'http://gw', token: 'a+b/c=', resumeSession: 's 1' })).toBe('ws://gw/ws?token=a%2Bb%2Fc%3D&resume_session=s+1');
  });
});

describe('classifyClose', () => {
  it.each([
    [4401, 'UNAUTHORIZED', { reason: 'unauthorized', message: 'UNAUTHORIZED' }],
    [4409, 'DRAINING', { reason: 'elsewhere' }],
    [4429, 'FLOOD', { reason: 'lost', message: 'closed 4429 FLOOD' }],
    [4413, 'TOO_LARGE', { reason: 'lost', message: 'closed 4413 TOO_LARGE' }],
    [1006, '', { reason: 'lost', message: 'closed 1006' }],
  ])('%i %s', (code, reason, expected) => {
    expect(classifyClose(code, reason)).toEqual(expected);
  });
});

/** A real `ws` server standing in for a gateway: the test scripts what it sends. */
describe('webSocketTransport against a scripted server', () => {
  let server: WebSocketServer;
  let url: string;
  const connected: Array<{ socket: WebSocket; url: string; received: unknown[] }> = [];
  beforeEach(async () => {
    server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    server.on('connection', (socket, request) => {
      const entry = { socket, url: request.url ?? '', received: [] as unknown[] };
      socket.on('message', (data) => entry.received.push(JSON.parse(data.toString())));
      connected.push(entry);
    });
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    connected.splice(0).forEach((c) => c.socket.terminate());
    await new Promise((resolve) => server.close(resolve));
  });

  const HELLO = {
    kind: 'hello',
    protocol: 1,
    connectionId: 'c1',
    serverId: 'pod-9',
    heartbeatMs: 25_000,
    limits: { maxPayloadBytes: 1000, commandsPerSecond: 20 },
  };

  function recorder(): { handlers: TransportHandlers; calls: Array<[string, unknown]>; next(name: string): Promise<unknown> } {
    const calls: Array<[string, unknown]> = [];
    const waiters: Array<() => void> = [];
    const record =
      (name: string) =>
      (arg?: unknown): void => {
        calls.push([name, arg]);
        waiters.splice(0).forEach((wake) => wake());
      };
    const handlers: TransportHandlers = {
      hello: record('hello'),
      event: record('event'),
      presence: record('presence'),
      sessionHistory: record('sessionHistory'),
      commandError: record('commandError'),
      draining: record('draining'),
      authExpired: record('authExpired'),
      closed: record('closed'),
    };
    const next = (name: string) =>
      new Promise<unknown>((resolve) => {
        const check = (): void => {
          const found = calls.find(([n]) => n === name);
          if (found) resolve(found[1]);
          else waiters.push(check);
        };
        check();
      });
    return { handlers, calls, next };
  }

  it('takes the frames apart: hello, acks by id, flat envelopes without kind; unknown kinds are skipped', async () => {
    const { handlers, calls, next } = recorder();
    const connection = webSocketTransport({ WebSocket })({ url, token: 'jwt' }, handlers);
    await waitFor(() => connected.length === 1);
    const server = connected[0];
    expect(server.url).toBe('/ws?token=jwt');
    server.socket.send(JSON.stringify(HELLO));
    expect(await next('hello')).toEqual({
      protocol: 1,
      connectionId: 'c1',
      serverId: 'pod-9',
      heartbeatMs: 25_000,
      limits: { maxPayloadBytes: 1000, commandsPerSecond: 20 },
    });

    const acks: Ack[] = [];
    connection.send({ v: 1, id: 'a', type: 'presence', payload: { stream: 'bot:x' } }, (ack) => acks.push(ack));
    connection.send({ v: 1, id: 'b', type: 'presence', payload: { stream: 'bot:y' } }, (ack) => acks.push(ack));
    await waitFor(() => server.received.length === 2);
    expect(server.received).toEqual([
      { v: 1, id: 'a', type: 'presence', payload: { stream: 'bot:x' } },
      { v: 1, id: 'b', type: 'presence', payload: { stream: 'bot:y' } },
    ]);
    server.socket.send(JSON.stringify({ kind: 'ack', id: 'b', ok: false, error: { code: 'FORBIDDEN', message: 'no' } }));
    server.socket.send(JSON.stringify({ kind: 'some_future_kind', x: 1 }));
    server.socket.send(JSON.stringify({ kind: 'ack', id: 'a', ok: true, result: { members: [] } }));
    const envelope = { v: 1, stream: 'bot:x', seq: 1, epoch: 'e', id: 'i', type: 'thinking', ts: 1, payload: { sessionId: 's', runId: 'r', content: 'c' } };
    server.socket.send(JSON.stringify({ kind: 'event', ...envelope }));
    expect(await next('event')).toEqual(envelope);
    expect(acks).toEqual([
      { ok: false, error: { code: 'FORBIDDEN', message: 'no' } },
      { ok: true, result: { members: [] } },
    ]);
    expect(calls.map(([name]) => name)).toEqual(['hello', 'event']);
    connection.close();
  });

  it('reports the close codes of the contract once, and nothing after its own close', async () => {
    const refused = recorder();
    webSocketTransport({ WebSocket })({ url, token: 'bad' }, refused.handlers);
    await waitFor(() => connected.length === 1);
    connected[0].socket.close(4401, 'UNAUTHORIZED');
    expect(await refused.next('closed')).toEqual({ reason: 'unauthorized', message: 'UNAUTHORIZED' });

    const closedByUs = recorder();
    const connection = webSocketTransport({ WebSocket })({ url, token: 'ok' }, closedByUs.handlers);
    await waitFor(() => connected.length === 2);
    connection.close();
    await new Promise<void>((resolve) => connected[1].socket.once('close', () => resolve()));
    expect(closedByUs.calls).toEqual([]);
    expect(refused.calls).toHaveLength(1);
  });

  it('drops a connection whose frame it cannot read, and one with no hello in time', async () => {
    const garbled = recorder();
    webSocketTransport({ WebSocket })({ url, token: 't' }, garbled.handlers);
    await waitFor(() => connected.length === 1);
    connected[0].socket.send('not json');
    expect((await garbled.next('closed')) as TransportClose).toEqual({
      reason: 'lost',
      message: 'the server sent a frame that is not a JSON object with a kind',
    });

    const silent = recorder();
    const started = Date.now();
    webSocketTransport({ WebSocket, helloTimeoutMs: 200 })({ url, token: 't' }, silent.handlers);
    expect(await silent.next('closed')).toEqual({ reason: 'lost', message: 'no hello within 200 ms' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('asks for a WebSocket class where there is no global one', () => {
    const global = globalThis as { WebSocket?: unknown };
    const saved = global.WebSocket;
    delete global.WebSocket;
    try {
      expect(() => webSocketTransport()).toThrow(/no global WebSocket/);
    } finally {
      if (saved !== undefined) global.WebSocket = saved;
    }
  });

  it('takes a connection that goes silent past its heartbeats for lost; heartbeat frames keep it alive and reach no handler', async () => {
    const { handlers, calls, next } = recorder();
    const connection = webSocketTransport({ WebSocket, deadAfterMs: 400 })({ url, token: 'jwt' }, handlers);
    await waitFor(() => connected.length === 1);
    const server = connected[0];
    server.socket.send(JSON.stringify({ ...HELLO, heartbeatMs: 100 }));
    await next('hello');
    const beats = setInterval(() => server.socket.send('{"kind":"heartbeat"}'), 100);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    clearInterval(beats);
    expect(calls.map(([name]) => name)).toEqual(['hello']);
    // The server stops sending, the TCP connection stays: only the silence tells.
    expect(await next('closed')).toEqual({ reason: 'lost', message: 'nothing from the server for 400 ms' });
    connection.close();
  });
});
