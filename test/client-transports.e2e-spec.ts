import type { PublishedEvent } from '@app/backplane';
import type { ConnectionStatus, RealtimeClient } from '@app/client';
import { type BotEvent, ErrorCode, foldEvents, initialState, type PresenceChange, ProtocolError, type SessionHistory } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { SDK_TRANSPORTS, sdkClient } from './support/sdk';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * What the SDK promises a dashboard, on each of its wires (Socket.IO and the plain `/ws`):
 * snapshot then deltas, typed events, commands and their errors, presence, a resumed
 * session, and what it does with a refused or expired token. Pod kills, Redis faults and
 * drains are in faults.e2e-spec.ts and drain.e2e-spec.ts, on both wires too.
 */
let system: TestSystem;
const clients: RealtimeClient[] = [];
beforeAll(async () => {
  system = await startSystem({ gateways: 2, workers: 1 });
});
afterEach(() => {
  clients.splice(0).forEach((c) => c.close());
});
afterAll(async () => {
  await system?.stop();
});

describe.each(SDK_TRANSPORTS)('the SDK over %s', (transport) => {
  const client = (options: Partial<Parameters<typeof sdkClient>[1]> = {}): RealtimeClient => {
    const made = sdkClient(transport, { url: system.gateways[0].url, token: () => signToken({ sub: `${transport}-user` }), ...options });
    clients.push(made);
    return made;
  };

  it('subscribes with a snapshot, then folds the deltas; a chat run streams typed events', async () => {
    const botId = `snap-${transport.replace('.', '')}`;
    const stream = `bot:${botId}` as const;
    const earlier: BotEvent[] = [1, 2, 3].map((i) => ({ type: 'session_created', payload: { sessionId: `old-${i}`, title: `old ${i}` } }));
    const publisher = system.publisher();
    const published: PublishedEvent[] = [];
    for (const event of earlier) published.push(await publisher.publish(stream, event));

    const sdk = client({ url: system.gateways[1].url });
    const chunks: string[] = [];
    sdk.on('message', (e) => {
      if (e.payload.role === 'assistant') chunks.push(e.payload.content);
    });
    const store = await sdk.subscribe(stream);
    expect(sdk.hello).toMatchObject({ protocol: 1, serverId: 'pod-2' });
    expect({ seq: store.seq, status: store.status }).toEqual({ seq: 3, status: 'live' });
    expect(store.state).toEqual(
      foldEvents(
        'bot',
        initialState('bot'),
        earlier.map((event, i) => ({ ...event, ts: published[i].ts })),
      ),
    );

    const { runId, sessionId } = await sdk.command('chat', { botId, content: 'hello there' });
    await waitFor(() => store.state.recentRuns.some((r) => r.runId === runId && r.status === 'completed'), { message: 'the run completed' });
    expect(chunks.join('')).toBe('Echo: hello there');
    expect(store.state.sessions.map((s) => s.sessionId)).toContain(sessionId);
    expect(store.duplicatesDropped).toBe(0);
  });

  it('rejects a command with a ProtocolError carrying the contract code, and gives up a forbidden stream', async () => {
    const sdk = client({ token: () => signToken({ sub: 'narrow', scope: ['bot:mine'] }) });
    const errors: ProtocolError[] = [];
    sdk.on('error', (e) => errors.push(e));
    await expect(sdk.command('cancel', { runId: '' })).rejects.toMatchObject({ code: ErrorCode.VALIDATION_FAILED });
    await expect(sdk.subscribe('bot:theirs')).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    expect(errors.map((e) => e.code)).toEqual([ErrorCode.FORBIDDEN]);
    // The connection is still fine for what the token allows.
    await expect(sdk.subscribe('bot:mine')).resolves.toMatchObject({ status: 'live' });
  });

  it('answers a command too large for the server to read without sending it, and keeps the connection', async () => {
    const sdk = client();
    const store = await sdk.subscribe('bot:too-large');
    const statuses: ConnectionStatus[] = [];
    sdk.on('status', (s) => statuses.push(s));
    const limit = sdk.hello?.limits.maxPayloadBytes ?? 0;
    const oversized = sdk.command('chat', { botId: 'too-large', content: 'x'.repeat(limit * 2 + 1) });
    await expect(oversized).rejects.toMatchObject({ code: ErrorCode.PAYLOAD_TOO_LARGE });
    // Over the limit but readable: the server answers, and the connection stays.
    await expect(sdk.command('chat', { botId: 'too-large', content: 'x'.repeat(limit + 1) })).rejects.toMatchObject({ code: ErrorCode.PAYLOAD_TOO_LARGE });
    await expect(sdk.command('presence', { stream: 'bot:too-large' })).resolves.toEqual({ members: [{ userId: `${transport}-user`, connections: 1 }] });
    expect(statuses).toEqual([]);
    expect(store.status).toBe('live');
  });

  it('tells subscribers who joins and leaves a stream (presence), whichever wire the others use', async () => {
    const stream = `bot:presence-${transport.replace('.', '')}` as const;
    const watcher = client();
    const changes: PresenceChange[] = [];
    watcher.on('presence', (change) => changes.push(change));
    await watcher.subscribe(stream);
    for (const other of SDK_TRANSPORTS) {
      const visitor = sdkClient(other, { url: system.gateways[1].url, token: () => signToken({ sub: `visitor-${other}` }) });
      clients.push(visitor);
      await visitor.subscribe(stream);
      await waitFor(() => changes.some((c) => c.joined?.includes(`visitor-${other}`)), { message: `visitor over ${other} joined` });
      visitor.close();
      await waitFor(() => changes.some((c) => c.left?.includes(`visitor-${other}`)), { message: `visitor over ${other} left` });
    }
  });

  it('sends the history of a resumed session right after hello', async () => {
    const botId = `resume-${transport.replace('.', '')}`;
    const first = client();
    const store = await first.subscribe(`bot:${botId}`);
    const { runId, sessionId } = await first.command('chat', { botId, content: 'remember me' });
    await waitFor(() => store.state.recentRuns.some((r) => r.runId === runId), { message: 'the run ended' });

    const resumed = client({ url: system.gateways[1].url, resumeSession: sessionId });
    const history = await new Promise<SessionHistory>((resolve) => resumed.on('session_history', resolve));
    expect(history).toMatchObject({ sessionId, botId });
    expect(history.messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'remember me'],
      ['assistant', 'Echo: remember me'],
    ]);
  });

  it('stops at once with UNAUTHORIZED when a fixed token is refused, instead of retrying', async () => {
    const sdk = client({ token: 'not-a-jwt', backoff: { baseMs: 10, maxMs: 20 } });
    const statuses: ConnectionStatus[] = [];
    sdk.on('status', (s) => statuses.push(s));
    const error = await new Promise<ProtocolError>((resolve) => sdk.on('error', resolve));
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.code).toBe(ErrorCode.UNAUTHORIZED);
    expect(sdk.status).toBe('closed');
    await expect(sdk.command('presence', { stream: 'bot:x' })).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(statuses).toEqual(['closed']);
  });

  it('when a fixed token expires (auth_expired), reconnects once, finds the token refused, and stops', async () => {
    const sdk = client({ token: await signToken({ sub: 'short', expiresInSeconds: 2 }), backoff: { baseMs: 10, maxMs: 20 } });
    await sdk.subscribe('bot:short-lived');
    const statuses: ConnectionStatus[] = [];
    sdk.on('status', (s) => statuses.push(s));
    const error = await new Promise<ProtocolError>((resolve) => sdk.on('error', resolve));
    expect(error.code).toBe(ErrorCode.UNAUTHORIZED);
    expect(statuses).toEqual(['reconnecting', 'closed']);
  });
});
