import { isDeepStrictEqual } from 'node:util';
import type { PresenceChange } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { TEST_API_KEY } from './support/tokens';
import { connectSocket, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/** A connection's life: hello, token expiry and refresh, presence, sessions, inbound, metrics. */
let system: TestSystem;
const sockets: TestSocket[] = [];
beforeAll(async () => {
  system = await startSystem({ gateways: 2, workers: 1, env: { PRESENCE_BEAT_MS: '300' } });
});
afterAll(async () => {
  sockets.forEach((s) => s.close());
  await system?.stop();
});

async function connect(pod: number, options: Parameters<typeof signToken>[0] = {}, query?: Record<string, string>): Promise<TestSocket> {
  const socket = await connectSocket(system.gateways[pod].url, await signToken(options), { query });
  sockets.push(socket);
  return socket;
}

it('greets with hello: protocol, connection, pod and limits', async () => {
  const s = await connect(1);
  expect(s.hello).toEqual({
    protocol: 1,
    connectionId: s.socket.id,
    serverId: 'pod-2',
    heartbeatMs: 25_000,
    limits: { maxPayloadBytes: 262_144, commandsPerSecond: 20 },
  });
});

it('sends auth_expired and disconnects when the token runs out; refresh_token extends the connection', async () => {
  const short = await connect(0, { sub: 'erin', expiresInSeconds: 2 });
  const expired = new Promise((resolve) => short.socket.once('auth_expired', resolve));
  const gone = new Promise<string>((resolve) => short.socket.once('disconnect', resolve));
  expect(await expired).toEqual({ message: 'token expired' });
  expect(await gone).toBe('io server disconnect');

  const refreshed = await connect(0, { sub: 'erin', expiresInSeconds: 2 });
  let expiredEvent = false;
  refreshed.socket.on('auth_expired', () => (expiredEvent = true));
  const ack = await refreshed.command<{ expiresAt: number }>('refresh_token', { token: await signToken({ sub: 'erin', expiresInSeconds: 60 }) });
  expect(ack.ok && ack.result.expiresAt).toBeGreaterThan(Date.now() + 50_000);
  // Past the first token's expiry, the connection is still alive and working.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  expect(expiredEvent).toBe(false);
  expect(await refreshed.command('subscribe', { stream: 'bot:after-refresh' })).toMatchObject({ ok: true });

  expect(await refreshed.command('refresh_token', { token: await signToken({ sub: 'mallory' }) })).toMatchObject({
    ok: false,
    error: { code: 'UNAUTHORIZED' },
  });
  expect(await refreshed.command('refresh_token', { token: 'garbage' })).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
});

it('drops subscriptions a refreshed token no longer covers', async () => {
  const s = await connect(0, { sub: 'frank', scope: ['bot:*'] });
  await s.command('subscribe', { stream: 'bot:kept' });
  await s.command('subscribe', { stream: 'bot:dropped' });
  expect(await s.command('refresh_token', { token: await signToken({ sub: 'frank', scope: ['bot:kept'] }) })).toMatchObject({ ok: true });
  const publisher = system.publisher();
  await publisher.publish('bot:dropped', { type: 'session_created', payload: { sessionId: 'x', title: 'x' } });
  await publisher.publish('bot:kept', { type: 'session_created', payload: { sessionId: 'y', title: 'y' } });
  await waitFor(() => s.events.length >= 1);
  expect(s.events.map((e) => e.stream)).toEqual(['bot:kept']);
});

it('tracks presence across pods: joined and left, and the presence command', async () => {
  const stream = 'bot:presence-1';
  const watcher = await connect(0, { sub: 'watcher' });
  const changes: PresenceChange[] = [];
  watcher.socket.on('presence', (change) => changes.push(change));
  await watcher.command('subscribe', { stream });
  await waitFor(() => changes.some((c) => c.joined?.includes('watcher')), { message: 'own join announced' });

  const grace1 = await connect(1, { sub: 'grace' });
  const grace2 = await connect(0, { sub: 'grace' });
  await grace1.command('subscribe', { stream });
  await grace2.command('subscribe', { stream });
  await waitFor(() => changes.some((c) => c.joined?.includes('grace')), { message: 'grace joined' });
  // A member's connection count may lag her join by up to a second (count changes are batched).
  const expected = {
    ok: true,
    result: {
      members: [
        { userId: 'grace', connections: 2 },
        { userId: 'watcher', connections: 1 },
      ],
    },
  };
  await waitFor(async () => isDeepStrictEqual(await watcher.command('presence', { stream }), expected), { message: "both of grace's connections counted" });

  // Grace's first connection leaving is not her leaving; the second one is.
  grace1.close();
  await waitFor(async () => {
    const ack = await watcher.command<{ members: Array<{ userId: string; connections: number }> }>('presence', { stream });
    return ack.ok && ack.result.members.find((m) => m.userId === 'grace')?.connections === 1;
  });
  expect(changes.some((c) => c.left?.includes('grace'))).toBe(false);
  await grace2.command('unsubscribe', { stream });
  await waitFor(() => changes.some((c) => c.left?.includes('grace')), { message: 'grace left' });
  expect(changes.filter((c) => c.joined?.includes('grace'))).toHaveLength(1);
});

it('answers switch_session and resume_session with the session history', async () => {
  const s = await connect(0, { sub: 'heidi' });
  await s.command('subscribe', { stream: 'bot:history-1' });
  const chat = await s.command<{ sessionId: string }>('chat', { botId: 'history-1', content: 'remember me' });
  if (!chat.ok) throw new Error(JSON.stringify(chat));
  await waitFor(() => s.events.some((e) => e.type === 'done'));
  const resumed = await connect(1, { sub: 'heidi' }, { resume_session: chat.result.sessionId });
  const [history] = (await waitFor(() => resumed.received.find((r) => r.event === 'session_history'), { message: 'session_history' })).args;
  expect(history).toEqual({
    sessionId: chat.result.sessionId,
    botId: 'history-1',
    messages: [expect.objectContaining({ role: 'user', content: 'remember me' }), expect.objectContaining({ role: 'assistant', content: 'Echo: remember me' })],
  });
});

it('accepts inbound platform messages: published as platform_message and answered by a run', async () => {
  const s = await connect(0, { sub: 'ivan' });
  await s.command('subscribe', { stream: 'bot:inbound-1' });
  const response = await fetch(`${system.gateways[1].url}/v1/bots/inbound-1/inbound`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json', connection: 'close' },
    body: JSON.stringify({ platform: 'slack', chatId: 'C42', content: 'from slack', userId: 'U7' }),
  });
  expect(response.status).toBe(202);
  const body = (await response.json()) as { sessionId: string; runId: string };
  await waitFor(() => s.events.some((e) => e.type === 'done'), { message: 'inbound run done' });
  const types = s.events.map((e) => e.type);
  expect(types.slice(0, 3)).toEqual(['session_created', 'platform_message', 'run_started']);
  expect(s.events[1].payload).toEqual({ sessionId: body.sessionId, platform: 'slack', chatId: 'C42', role: 'user', content: 'from slack' });
  // The chat maps to the same session next time.
  const again = await fetch(`${system.gateways[0].url}/v1/bots/inbound-1/inbound`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json', connection: 'close' },
    body: JSON.stringify({ platform: 'slack', chatId: 'C42', content: 'second' }),
  });
  expect(((await again.json()) as { sessionId: string }).sessionId).toBe(body.sessionId);
  const bad = await fetch(`${system.gateways[0].url}/v1/bots/inbound-1/inbound`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json', connection: 'close' },
    body: JSON.stringify({ platform: 'slack' }),
  });
  expect(bad.status).toBe(400);
});

it('exposes Prometheus metrics for sockets, commands, deliveries and latency', async () => {
  const text = await (await fetch(`${system.gateways[0].url}/metrics`, { headers: { connection: 'close' } })).text();
  for (const name of [
    'rtgw_sockets',
    'rtgw_commands_total',
    'rtgw_events_delivered_total',
    'rtgw_publish_to_deliver_seconds_bucket',
    'rtgw_redis_errors_total',
    'rtgw_subscriptions',
  ]) {
    expect(text).toContain(name);
  }
  expect(text).toMatch(/rtgw_commands_total\{type="subscribe",outcome="ok"\} [1-9]/);
  const worker = await (await fetch(`${system.workers[0].url}/metrics`, { headers: { connection: 'close' } })).text();
  expect(worker).toMatch(/rtwk_jobs_total\{queue="agent-runs",outcome="completed"\} [1-9]/);
});
