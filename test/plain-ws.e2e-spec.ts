import type { Envelope, StreamName } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { connect as connectTcp } from 'node:net';
import WebSocket from 'ws';
import { openPlain, type PlainTestSocket } from './support/plain-ws';
import { startGateway } from './support/processes';
import { connectSocket, range, seqsOf, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * `/ws` (PROTOCOL.md §11): the same contract as Socket.IO over plain JSON frames, on the
 * same connection core — auth and its refusals, acks, bad frames, limits, subscriptions with
 * replay and snapshots, and one stream's events in the same order on both transports.
 */
let system: TestSystem;
const open: Array<PlainTestSocket | TestSocket> = [];
beforeAll(async () => {
  system = await startSystem({ gateways: 2, workers: 0, env: { WS_MAX_BUFFERED_BYTES: String(64 * 1024) } });
});
afterAll(async () => {
  open.forEach((s) => s.close());
  await system?.stop();
});

async function plain(pod: number, options: Parameters<typeof openPlain>[1]): Promise<PlainTestSocket> {
  const socket = await openPlain(system.gateways[pod].url, options);
  open.push(socket);
  return socket;
}

let sessionCounter = 0;
async function publishMany(stream: StreamName, count: number, bytes = 0): Promise<void> {
  const publisher = system.publisher();
  for (let i = 0; i < count; i++) {
    await publisher.publish(stream, { type: 'session_created', payload: { sessionId: `s${++sessionCounter}`, title: 'x'.repeat(bytes) } });
  }
}

describe('authentication', () => {
  it('greets a token in the query with hello, as Socket.IO does', async () => {
    const s = await plain(1, { token: await signToken() });
    const hello = await s.hello();
    expect(hello).toEqual({
      protocol: 1,
      connectionId: expect.any(String),
      serverId: 'pod-2',
      heartbeatMs: 25_000,
      limits: { maxPayloadBytes: 262_144, commandsPerSecond: 20 },
    });
    expect(s.frames[0].kind).toBe('hello');
  });

  it('accepts the token in a first auth frame', async () => {
    const s = await plain(0, { authFrame: { type: 'auth', token: await signToken({ sub: 'frame-user' }) } });
    expect((await s.hello()).serverId).toBe('pod-1');
    expect(await s.command('subscribe', { stream: 'bot:auth-frame' })).toMatchObject({ ok: true, result: { stream: 'bot:auth-frame', seq: 0 } });
  });

  it.each([
    ['a malformed token in the query', async () => ({ token: 'garbage' })],
    ['an expired token', async () => ({ token: await signToken({ expiresInSeconds: -10 }) })],
    ['a token signed with another secret', async () => ({ token: await signToken({ secret: 'not-the-secret-0123456789' }) })],
    ['a bad token in the auth frame', async () => ({ authFrame: { type: 'auth', token: 'garbage' } })],
    ['a first frame that is not an auth frame', async () => ({ authFrame: { v: 1, id: 'c1', type: 'subscribe', payload: { stream: 'bot:x' } } })],
  ])('closes 4401 for %s, sending nothing else', async (_label, options) => {
    const s = await plain(0, await options());
    expect(await s.closed).toEqual({ code: 4401, reason: 'UNAUTHORIZED' });
    expect(s.frames).toEqual([]);
  });

  it('closes 4408 when no auth frame comes within 5 s', async () => {
    const started = Date.now();
    const s = await plain(0, {});
    expect(await s.closed).toEqual({ code: 4408, reason: 'AUTH_TIMEOUT' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(4_900);
  });

  it('sends auth_expired and closes 4401 when the token runs out', async () => {
    const s = await plain(0, { token: await signToken({ expiresInSeconds: 2 }) });
    await s.hello();
    expect(await s.next('auth_expired')).toEqual({ kind: 'auth_expired', message: 'token expired' });
    expect((await s.closed).code).toBe(4401);
  });

  it('answers other paths 404 and keeps Socket.IO working beside it', async () => {
    const refused = new WebSocket(`${system.gateways[0].url.replace('http', 'ws')}/nope`);
    const status = await new Promise<number | undefined>((resolve) =>
      refused.on('unexpected-response', (_req, res) => resolve(res.statusCode)).on('error', () => resolve(undefined)),
    );
    expect(status).toBe(404);
    const io = await connectSocket(system.gateways[0].url, await signToken());
    open.push(io);
    expect(io.hello.serverId).toBe('pod-1');
  });
});

describe('upgrades', () => {
  /** Sends a raw upgrade request; resolves with the status line, or 'hung' when nothing came in 3 s. */
  async function rawUpgrade(target: string, baseUrl = system.gateways[0].url): Promise<string> {
    const { port } = new URL(baseUrl);
    const socket = connectTcp(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(
      `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const answer = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('hung'), 3_000);
      socket.once('data', (chunk: Buffer) => {
        clearTimeout(timer);
        resolve(chunk.toString().split('\r\n')[0]);
      });
    });
    socket.destroy();
    return answer;
  }

  it('answers a request target no URL parser reads 400, and stays up', async () => {
    expect(await rawUpgrade('//[')).toBe('HTTP/1.1 400 Bad Request');
    expect(await rawUpgrade('http://%zz/')).toBe('HTTP/1.1 400 Bad Request');
    expect((await fetch(`${system.gateways[0].url}/healthz`)).status).toBe(200);
  });

  it("answers paths near Socket.IO's but not its own 404 instead of leaving them open", async () => {
    expect(await rawUpgrade('/socket.io')).toBe('HTTP/1.1 404 Not Found');
    expect(await rawUpgrade('/socket.io?EIO=4&transport=websocket')).toBe('HTTP/1.1 404 Not Found');
    expect(await rawUpgrade('/socket.iox/')).toBe('HTTP/1.1 404 Not Found');
    expect(await rawUpgrade('/socket.io/?EIO=4&transport=websocket')).toBe('HTTP/1.1 101 Switching Protocols');
  });

  it('answers a Socket.IO upgrade 400 on a pod that runs Socket.IO without websockets, and stays up', async () => {
    const pollingOnly = await startGateway({ redisUrl: system.redis.url, env: { TRANSPORTS: 'polling' } });
    try {
      expect(await rawUpgrade('/socket.io/?EIO=4&transport=websocket', pollingOnly.url)).toBe('HTTP/1.1 400 Bad Request');
      expect((await fetch(`${pollingOnly.url}/healthz`)).status).toBe(200);
    } finally {
      await pollingOnly.stop();
    }
  });

  it('acks commands sent right behind the auth frame, before authentication finished', async () => {
    const token = await signToken({ sub: 'eager' });
    const ws = new WebSocket(`${system.gateways[0].url.replace('http', 'ws')}/ws`);
    const frames: Array<{ kind: string; id?: string; ok?: boolean }> = [];
    ws.on('message', (data) => frames.push(JSON.parse(data.toString())));
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'auth', token }));
      for (const id of ['e1', 'e2', 'e3']) ws.send(JSON.stringify({ v: 1, id, type: 'presence', payload: { stream: 'bot:eager' } }));
    });
    await waitFor(() => frames.filter((f) => f.kind === 'ack').length === 3, { message: 'three acks' });
    expect(frames.map((f) => f.kind)).toEqual(['hello', 'ack', 'ack', 'ack']);
    expect(frames.filter((f) => f.kind === 'ack').map((f) => [f.id, f.ok])).toEqual([
      ['e1', true],
      ['e2', true],
      ['e3', true],
    ]);
    ws.close();
  });

  it('sends a heartbeat frame every heartbeat period', async () => {
    const quick = await startSystem({ gateways: 1, workers: 0, env: { HEARTBEAT_MS: '1000' } });
    try {
      const s = await openPlain(quick.gateways[0].url, { token: await signToken() });
      await s.hello();
      const before = s.frames.length;
      expect(await s.next('heartbeat', before)).toEqual({ kind: 'heartbeat' });
      s.close();
    } finally {
      await quick.stop();
    }
  });
});

describe('commands and bad input', () => {
  it('acks every command frame once with its id; bad ones with the contract codes, and the connection carries on', async () => {
    const s = await plain(0, { token: await signToken({ scope: ['bot:mine'] }) });
    await s.hello();
    expect(await s.command('subscribe', { stream: 'bot:other' })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await s.command('teleport', {})).toMatchObject({ ok: false, error: { code: 'UNKNOWN_COMMAND' } });
    expect(await s.command('subscribe', { stream: 'bot:bad name' })).toMatchObject({
      ok: false,
      error: { code: 'VALIDATION_FAILED', details: expect.any(Array) },
    });
    expect(await s.command('subscribe', { stream: 'bot:mine', constructor: 'x' })).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
    expect(await s.command('chat', { botId: 'mine', content: 'x'.repeat(300 * 1024) })).toMatchObject({ ok: false, error: { code: 'PAYLOAD_TOO_LARGE' } });

    const from = s.frames.length;
    s.ws.send('{ not json');
    expect(await s.next('command_error', from)).toMatchObject({ error: { code: 'VALIDATION_FAILED', details: [{ field: 'frame', constraint: 'json' }] } });
    const afterGarbage = s.frames.length;
    s.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await s.next('command_error', afterGarbage)).toMatchObject({
      error: { code: 'VALIDATION_FAILED', details: [{ field: 'frame', constraint: 'text' }] },
    });
    const afterBinary = s.frames.length;
    s.ws.send(JSON.stringify({ v: 1, type: 'subscribe', payload: { stream: 'bot:mine' } }));
    expect(await s.next('command_error', afterBinary)).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });

    expect(await s.command('subscribe', { stream: 'bot:mine' })).toMatchObject({ ok: true, result: { stream: 'bot:mine' } });
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('closes 4413 on a frame beyond twice the payload limit', async () => {
    const s = await plain(0, { token: await signToken() });
    await s.hello();
    s.ws.send(JSON.stringify({ v: 1, id: 'big', type: 'chat', payload: { botId: 'b', content: 'x'.repeat(600 * 1024) } }));
    expect(await s.closed).toEqual({ code: 4413, reason: 'TOO_LARGE' });
  });

  it('closes 4429 on a command flood', async () => {
    const s = await plain(0, { token: await signToken() });
    await s.hello();
    for (let i = 0; i < 250; i++) s.ws.send(JSON.stringify({ v: 1, id: `f${i}`, type: 'presence', payload: { stream: 'bot:flood' } }));
    expect(await s.closed).toEqual({ code: 4429, reason: 'FLOOD' });
    expect(s.frames.some((f) => f.kind === 'ack' && !f.ok && f.error.code === 'RATE_LIMITED')).toBe(true);
  });
});

describe('streams', () => {
  it('delivers one stream to plain and Socket.IO sockets on both pods in the same order', async () => {
    const stream = 'bot:mixed-1';
    const watchers = [await plain(0, { token: await signToken() }), await plain(1, { token: await signToken() })];
    const io = [await connectSocket(system.gateways[0].url, await signToken()), await connectSocket(system.gateways[1].url, await signToken())];
    open.push(...io);
    for (const w of watchers) expect(await w.command('subscribe', { stream })).toMatchObject({ ok: true, result: { seq: 0, snapshot: expect.any(Object) } });
    for (const s of io) expect(await s.command('subscribe', { stream })).toMatchObject({ ok: true });

    await publishMany(stream, 60);
    const all = [...watchers.map((w) => w.events), ...io.map((s) => s.events)];
    await waitFor(() => all.every((events) => events.length >= 60), { message: 'every watcher has 60 events' });
    const reference = (events: Envelope[]) => events.map((e) => [e.seq, e.id, e.type]);
    for (const events of all) {
      expect(seqsOf(events, stream)).toEqual(range(1, 60));
      expect(reference(events)).toEqual(reference(all[0]));
    }
  });

  it('resumes after a reconnect to another pod: replay from sinceSeq, no gap, no duplicate; a late joiner gets a snapshot', async () => {
    const stream = 'bot:plain-resume';
    const first = await plain(0, { token: await signToken() });
    const { result } = (await first.command('subscribe', { stream })) as { ok: true; result: { epoch: string } };
    await publishMany(stream, 5);
    await waitFor(() => first.events.length === 5);
    first.close();
    await publishMany(stream, 7);

    const again = await plain(1, { token: await signToken() });
    const last = first.events.at(-1)!;
    expect(await again.command('subscribe', { stream, sinceSeq: last.seq, epoch: result.epoch, lastId: last.id })).toMatchObject({
      ok: true,
      result: { seq: 12, replayed: 7 },
    });
    await waitFor(() => again.events.length >= 7);
    expect(seqsOf([...first.events, ...again.events], stream)).toEqual(range(1, 12));

    const late = await plain(1, { token: await signToken() });
    const snapshot = await late.command<{ seq: number; snapshot: { sessions: unknown[] } }>('subscribe', { stream });
    expect(snapshot).toMatchObject({ ok: true, result: { seq: 12, replayed: 0 } });
    expect(snapshot.ok && snapshot.result.snapshot.sessions).toHaveLength(12);
  });

  it('cuts off a reader that stops reading, without disturbing the others', async () => {
    const stream = 'bot:slow-reader';
    const slow = await plain(0, { token: await signToken() });
    const fine = await plain(0, { token: await signToken() });
    await slow.command('subscribe', { stream });
    await fine.command('subscribe', { stream });
    // The slow client stops reading its socket: the kernel buffers fill, then the pod's.
    (slow.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    await publishMany(stream, 200, 100 * 1024);
    await waitFor(() => fine.events.length === 200, { message: 'the reading client got everything', timeoutMs: 30_000 });
    const metrics = await (await fetch(`${system.gateways[0].url}/metrics`)).text();
    expect(metrics).toMatch(/rtgw_plain_closed_total\{reason="slow_reader"\} [1-9]/);
    (slow.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
    expect((await slow.closed).code).toBe(1006);
    expect(seqsOf(fine.events, stream)).toEqual(range(1, 200));
  });

  it('cuts off a Socket.IO reader that stops reading too (bounded by the same WS_MAX_BUFFERED_BYTES)', async () => {
    const stream = 'bot:slow-reader-io';
    const slow = await connectSocket(system.gateways[0].url, await signToken());
    const fine = await connectSocket(system.gateways[0].url, await signToken());
    open.push(slow, fine);
    await slow.command('subscribe', { stream });
    await fine.command('subscribe', { stream });
    const gone = new Promise<string>((resolve) => slow.socket.once('disconnect', resolve));
    const tcp = (slow.socket.io.engine.transport as unknown as { ws: { _socket: import('node:net').Socket } }).ws._socket;
    tcp.pause();
    await publishMany(stream, 200, 100 * 1024);
    await waitFor(() => fine.events.length === 200, { message: 'the reading client got everything', timeoutMs: 30_000 });
    await waitFor(async () => /rtgw_slow_readers_total\{transport="socket.io"\} [1-9]/.test(await (await fetch(`${system.gateways[0].url}/metrics`)).text()), {
      message: 'the pod cut the slow reader',
    });
    tcp.resume();
    expect(await gone).toBe('transport close');
    expect(seqsOf(fine.events, stream)).toEqual(range(1, 200));
  });

  it('tells plain sockets of a draining pod to go elsewhere: draining, then close 4409', async () => {
    const s = await plain(1, { token: await signToken() });
    await s.hello();
    const stopped = system.gateways[1].stop();
    expect(await s.next('draining')).toMatchObject({ kind: 'draining', serverId: 'pod-2' });
    expect(await s.closed).toEqual({ code: 4409, reason: 'DRAINING' });
    await stopped;
  });
});
