import { commandKey, streamChannel } from '@app/backplane';
import { waitFor } from '@app/runtime';
import { io } from 'socket.io-client';
import { publishHttp } from './support/http';
import { RawSocketIo } from './support/raw-ws';
import { connectSocket, loose, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken, TEST_JWT_SECRET } from './support/tokens';

/**
 * Bad input of every kind gets a clear contract error and harms nothing else: the bad
 * connection stays usable (but for an oversized frame or a flood), and a bystander on the
 * same pod keeps receiving its stream throughout.
 */
const MAX_PAYLOAD = 4096;
let system: TestSystem;
let bystander: TestSocket;
let url: string;
const sockets: TestSocket[] = [];
const BYSTANDER_STREAM = 'bot:bystander';

beforeAll(async () => {
  system = await startSystem({
    gateways: 1,
    workers: 0,
    env: { MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD), COMMANDS_PER_SECOND: '10', COMMAND_TIMEOUT_MS: '1500' },
  });
  url = system.gateways[0].url;
  bystander = await connectSocket(url, await signToken({ sub: 'bystander' }));
  await bystander.command('subscribe', { stream: BYSTANDER_STREAM });
});
afterAll(async () => {
  sockets.forEach((s) => s.close());
  bystander?.close();
  await system?.stop();
});

async function connect(scope: string[] = ['bot:*', 'dag:*'], sub = 'mallory'): Promise<TestSocket> {
  const socket = await connectSocket(url, await signToken({ sub, scope }));
  sockets.push(socket);
  return socket;
}

/** After each test: the bystander still gets events, and the pod is healthy. */
afterEach(async () => {
  const before = bystander.events.length;
  const response = await publishHttp(url, BYSTANDER_STREAM, { type: 'session_created', payload: { sessionId: 's', title: 't' } });
  expect(response.status).toBe(201);
  await waitFor(() => bystander.events.length === before + 1, { message: 'the bystander received the next event' });
  expect(bystander.socket.connected).toBe(true);
});

describe('handshake', () => {
  async function refusal(auth: Record<string, unknown>): Promise<{ data: unknown; sawHello: boolean }> {
    const socket = io(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
    let sawHello = false;
    socket.on('hello', () => (sawHello = true));
    const error = await new Promise<Error & { data?: unknown }>((resolve) => socket.once('connect_error', resolve));
    socket.close();
    return { data: error.data, sawHello };
  }

  it.each([
    ['a missing token', {}, 'missing token'],
    ['an expired token', 'expired', 'token expired'],
    ['a badly signed token', 'bad-signature', 'bad token signature'],
    ['a malformed token', { token: 'not.a.jwt' }, 'malformed token'],
    ['a token whose scope is not an array', 'bad-scope', 'token claim "scope" must be an array of strings'],
  ])('refuses %s before connecting, with UNAUTHORIZED', async (_name, auth, message) => {
    const byName: Record<string, () => Promise<Record<string, unknown>>> = {
      expired: async () => ({ token: await signToken({ expiresInSeconds: -10 }) }),
      'bad-signature': async () => ({ token: await signToken({ secret: `${TEST_JWT_SECRET}-other` }) }),
      'bad-scope': async () => ({ token: await signToken({ scope: 'bot:*' }) }),
    };
    const resolved = typeof auth === 'string' ? await byName[auth]() : auth;
    expect(await refusal(resolved)).toEqual({ data: { code: 'UNAUTHORIZED', message }, sawHello: false });
  });
});

describe('commands', () => {
  it('answers malformed frames and unknown types with one clear error each', async () => {
    const s = await connect();
    const raw = (frame: unknown) => loose(s.socket).timeout(5000).emitWithAck('command', frame);
    expect(await raw('hello')).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
    expect(await raw({ v: 2, id: 'x1', type: 'subscribe', payload: {} })).toMatchObject({
      ok: false,
      error: { code: 'VALIDATION_FAILED', details: [{ field: 'v', constraint: 'equals' }] },
    });
    expect(await raw({ v: 1, id: 'has space', type: 'subscribe', payload: {}, extra: 1 })).toMatchObject({
      ok: false,
      error: {
        code: 'VALIDATION_FAILED',
        details: expect.arrayContaining([expect.objectContaining({ field: 'extra' }), expect.objectContaining({ field: 'id' })]),
      },
    });
    expect(await s.command('teleport', {})).toMatchObject({ ok: false, error: { code: 'UNKNOWN_COMMAND' } });
    // An event that is not `command`, with an ack: UNKNOWN_COMMAND too.
    expect(await loose(s.socket).timeout(5000).emitWithAck('chat', {})).toMatchObject({ ok: false, error: { code: 'UNKNOWN_COMMAND' } });
  });

  it('refuses unknown fields and bad values, naming each field', async () => {
    const s = await connect();
    const ack = await s.command('chat', { botId: 'b 1', content: 7, colour: 'blue' });
    expect(ack.ok).toBe(false);
    if (ack.ok) return;
    expect(ack.error.code).toBe('VALIDATION_FAILED');
    expect(ack.error.details?.map((d) => `${d.field}:${d.constraint}`).sort()).toEqual([
      'botId:matches',
      'colour:whitelistValidation',
      'content:isString',
      'content:minLength',
    ]);
  });

  it.each(['room:1', 'bot:', 'bot:a/b', `bot:${'x'.repeat(129)}`])('refuses the stream name %s', async (stream) => {
    const s = await connect();
    expect(await s.command('subscribe', { stream })).toMatchObject({
      ok: false,
      error: { code: 'VALIDATION_FAILED', details: [expect.objectContaining({ field: 'stream' })] },
    });
  });

  it('refuses what the token does not cover with FORBIDDEN', async () => {
    const s = await connect(['bot:mine']);
    expect(await s.command('subscribe', { stream: 'bot:mine' })).toMatchObject({ ok: true });
    for (const [type, payload] of [
      ['subscribe', { stream: 'bot:theirs' }],
      ['subscribe', { stream: 'dag:e1' }],
      ['presence', { stream: 'bot:theirs' }],
      ['chat', { botId: 'theirs', content: 'hi' }],
      ['new_session', { botId: 'theirs' }],
      ['start_execution', { dag: { nodes: [{ id: 'a' }], edges: [] } }],
    ] as const) {
      expect({ type, ack: await s.command(type, payload) }).toMatchObject({ type, ack: { ok: false, error: { code: 'FORBIDDEN' } } });
    }
  });

  it('answers NOT_FOUND for things that do not exist, and CONFLICT for a reused command id', async () => {
    const s = await connect();
    expect(await s.command('cancel', { runId: 'no-such-run' })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await s.command('switch_session', { sessionId: 'no-such-session' })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await s.command('approval', { approvalId: 'nope', approved: true })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await s.command('pause_execution', { executionId: 'nope' })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await s.command('start_execution', { dagId: 'not-stored' })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await s.command('new_session', { botId: 'b1', title: 'one' }, 'reused-id')).toMatchObject({ ok: true });
    expect(await s.command('new_session', { botId: 'b1', title: 'two' }, 'reused-id')).toMatchObject({ ok: false, error: { code: 'CONFLICT' } });
  });

  it('validates DAG structure: cycles and dangling edges are VALIDATION_FAILED', async () => {
    const s = await connect();
    const ack = await s.command('start_execution', {
      dag: {
        nodes: [{ id: 'a' }, { id: 'b' }],
        edges: [
          { from: 'a', to: 'b' },
          { from: 'b', to: 'a' },
        ],
      },
    });
    expect(ack).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED', details: [{ constraint: 'acyclic' }] } });
  });

  it('answers a command that is still running elsewhere with TIMEOUT once its deadline passes', async () => {
    const s = await connect(['bot:*'], 'waiter');
    // Another pod claimed this id and never finished (it died): the copy waits, then times out.
    const payload = { botId: 'b1', title: 'x' };
    const first = await s.command('new_session', payload, 'claimed-1');
    expect(first.ok).toBe(true);
    const key = commandKey('waiter', 'claimed-2');
    const record = JSON.parse((await system.client.get(commandKey('waiter', 'claimed-1'))) as string) as { fingerprint: string };
    await system.client.set(key, JSON.stringify({ state: 'pending', fingerprint: record.fingerprint, owner: 'dead-pod' }), 'PX', 60_000);
    expect(await s.command('new_session', payload, 'claimed-2')).toMatchObject({ ok: false, error: { code: 'TIMEOUT', retryAfterMs: 1000 } });
  });

  it('tells a command without an ack callback what was wrong, as command_error', async () => {
    const s = await connect();
    const error = new Promise((resolve) => s.socket.once('command_error', resolve));
    loose(s.socket).emit('command', { v: 1, id: 'no-ack', type: 'subscribe', payload: { stream: 'nope' } });
    expect(await error).toMatchObject({ id: 'no-ack', error: { code: 'VALIDATION_FAILED' } });
  });
});

describe('limits', () => {
  it('answers PAYLOAD_TOO_LARGE up to twice the limit, and closes only a connection that sends more', async () => {
    const s = await connect();
    const big = 'x'.repeat(MAX_PAYLOAD);
    expect(await s.command('chat', { botId: 'b1', content: big })).toMatchObject({ ok: false, error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(await s.command('chat', { botId: 'b1', content: 'x'.repeat(MAX_PAYLOAD * 2 - 200) })).toMatchObject({
      ok: false,
      error: { code: 'PAYLOAD_TOO_LARGE' },
    });
    expect(s.socket.connected).toBe(true);
    expect(await s.command('subscribe', { stream: 'bot:still-fine' })).toMatchObject({ ok: true });

    const huge = await connect();
    const closed = new Promise<string>((resolve) => huge.socket.once('disconnect', resolve));
    loose(huge.socket).emit('command', { v: 1, id: 'huge', type: 'chat', payload: { botId: 'b1', content: 'x'.repeat(MAX_PAYLOAD * 2 + 64 * 1024) } });
    expect(await closed).toBe('transport close');
  });

  it('rate limits with retryAfterMs, and closes only a flood far past the limit', async () => {
    const s = await connect();
    const acks = await Promise.all(Array.from({ length: 15 }, () => s.command('presence', { stream: 'bot:b1' })));
    const limited = acks.filter((a) => !a.ok);
    expect(limited.length).toBeGreaterThanOrEqual(4);
    for (const a of limited) expect(a).toMatchObject({ ok: false, error: { code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) } });
    expect(s.socket.connected).toBe(true);

    const flooder = await connect();
    const closed = new Promise<string>((resolve) => flooder.socket.once('disconnect', resolve));
    for (let i = 0; i < 120; i++)
      loose(flooder.socket).emit('command', { v: 1, id: `f${i}`, type: 'presence', payload: { stream: 'bot:b1' } }, () => undefined);
    expect(await closed).toBe('io server disconnect');
    expect(s.socket.connected).toBe(true);
  });

  it('drops a garbage frame with command_error and keeps the connection', async () => {
    const raw = await RawSocketIo.connect(url, await signToken());
    raw.send('4this is not a socket.io packet');
    expect(await raw.next((f) => f.startsWith('42["command_error"'))).toContain('VALIDATION_FAILED');
    raw.send('420["command",{"v":1,"id":"after-garbage","type":"subscribe","payload":{"stream":"bot:ok"}}]');
    expect(await raw.next((f) => f.startsWith('430['))).toContain('"ok":true');
    expect(raw.open).toBe(true);
    raw.close();
  });
});

describe('the backplane', () => {
  it('drops malformed messages on a stream channel without harming the pod or its sockets', async () => {
    const metric = async () => {
      const text = await (await fetch(`${url}/metrics`, { headers: { connection: 'close' } })).text();
      return Number(/^rtgw_backplane_invalid_messages_total (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const before = await metric();
    const channel = streamChannel(BYSTANDER_STREAM);
    for (const message of [
      'not json',
      '{"kind":"event","envelope":{"v":1,"except":{}}}',
      '{"kind":"presence","change":{"stream":"bot:other"}}',
      '[]',
      'null',
    ]) {
      await system.client.spublish(channel, message);
    }
    await waitFor(async () => (await metric()) === before + 5, { message: 'five invalid messages counted' });
  });
});

describe('HTTP publish', () => {
  const event = { type: 'session_created', payload: { sessionId: 's1', title: 'hi' } };

  it('refuses a missing or wrong API key with 401 UNAUTHORIZED', async () => {
    expect(await publishHttp(url, 'bot:h1', event, { apiKey: null })).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED' } });
    expect(await publishHttp(url, 'bot:h1', event, { apiKey: 'wrong-key-0123456789' })).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED' } });
    // The key is checked before the body is read: a bad or huge body without a key is still 401.
    expect(await publishHttp(url, 'bot:h1', {}, { apiKey: null, rawBody: '{"type":' })).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED' } });
    expect(await publishHttp(url, 'bot:h1', { type: 'x', payload: { big: 'x'.repeat(MAX_PAYLOAD * 3) } }, { apiKey: null })).toMatchObject({
      status: 401,
      body: { code: 'UNAUTHORIZED' },
    });
  });

  it('refuses bad bodies and streams with 400 VALIDATION_FAILED, too large with 413', async () => {
    expect(await publishHttp(url, 'bot:h1', { payload: {} })).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
    expect(await publishHttp(url, 'bot:h1', {}, { rawBody: '{"type":' })).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
    expect(await publishHttp(url, 'chan:h1', event)).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
    expect(await publishHttp(url, 'bot:h1', { ...event, extra: 1 })).toMatchObject({ status: 400, body: { details: [{ field: 'extra' }] } });
    const bad = await publishHttp(url, 'dag:h1', { type: 'node_state', payload: { nodeId: 'n1', status: 'asleep' } });
    expect(bad).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED', details: [{ field: 'payload.status', constraint: 'isIn' }] } });
    const large = await publishHttp(url, 'bot:h1', { type: 'thinking', payload: { sessionId: 's', runId: 'r', content: 'x'.repeat(MAX_PAYLOAD * 2) } });
    expect(large).toMatchObject({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  it('publishes once per Idempotency-Key', async () => {
    const first = await publishHttp(url, 'bot:h2', event, { idempotencyKey: 'k-1' });
    const again = await publishHttp(url, 'bot:h2', event, { idempotencyKey: 'k-1' });
    expect(first).toMatchObject({ status: 201, body: { stream: 'bot:h2', seq: 1 } });
    expect(again).toEqual(first);
    expect(await publishHttp(url, 'bot:h2', event, { idempotencyKey: 'k-2' })).toMatchObject({ status: 201, body: { seq: 2 } });
  });
});
