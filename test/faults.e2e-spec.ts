import type { PublishedEvent } from '@app/backplane';
import type { RealtimeClient } from '@app/client';
import { type BotEvent, type Envelope, foldEvents, initialState, type StreamName } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { SDK_TRANSPORTS, sdkClient } from './support/sdk';
import { connectSocket, range, seqsOf, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/** Faults: a pod dies, Redis restarts (with and without its data). Nothing is lost. */
let system: TestSystem;
const sockets: TestSocket[] = [];
const clients: RealtimeClient[] = [];
beforeEach(async () => {
  system = await startSystem({ gateways: 2, workers: 1, env: { PRESENCE_BEAT_MS: '500' } });
});
afterEach(async () => {
  sockets.splice(0).forEach((s) => s.close());
  clients.splice(0).forEach((c) => c.close());
  await system?.stop();
});

const thinking = (i: number): BotEvent => ({ type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i} ` } });

async function readyStatus(url: string): Promise<number> {
  return (await readiness(url)).status;
}

/** A pod's /readyz answer: its status and its checks (0 when it did not answer). */
async function readiness(url: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${url}/readyz`, { headers: { connection: 'close' } }).catch(() => null);
  return { status: response?.status ?? 0, body: await response?.json().catch(() => null) };
}

it('a pod dies: its clients resubscribe on the other pod with sinceSeq and miss nothing, see nothing twice', async () => {
  const stream = 'bot:pod-kill';
  const token = await signToken();
  const onDoomed = await Promise.all([0, 1, 2].map(() => connectSocket(system.gateways[0].url, token)));
  sockets.push(...onDoomed);
  for (const s of onDoomed) await s.command('subscribe', { stream });

  const publisher = system.publisher();
  let next = 1;
  let publishing = true;
  const storm = (async () => {
    while (publishing) await publisher.publish(stream, thinking(next++));
  })();
  await waitFor(() => onDoomed.every((s) => s.events.length > 50), { message: 'events flowing' });

  await system.gateways[0].kill();
  // Each client's whole history: what it got from the dead pod, then from the other one.
  const histories: Envelope[][] = [];
  for (const s of onDoomed) {
    const history = s.events;
    const last = history.at(-1) as Envelope;
    const moved = await connectSocket(system.gateways[1].url, token);
    sockets.push(moved);
    moved.socket.on('event', (e) => history.push(e));
    const ack = await moved.command('subscribe', { stream, sinceSeq: last.seq, epoch: last.epoch, lastId: last.id });
    expect(ack).toMatchObject({ ok: true, result: { replayed: expect.any(Number) } });
    histories.push(history);
  }
  await waitFor(() => histories.every((h) => h.length > 0 && (h.at(-1) as Envelope).seq > h[0].seq + 60), { message: 'events flowing on the other pod' });
  publishing = false;
  await storm;
  const total = next - 1;
  await waitFor(() => histories.every((h) => h.at(-1)?.seq === total), { message: 'every client caught up on the other pod' });
  for (const history of histories) expect(seqsOf(history, stream)).toEqual(range(1, total));
});

it('Redis restarts under a running system: readiness is red while it is down, and the path works again after', async () => {
  const stream = 'bot:redis-restart';
  const [a, b] = await Promise.all(system.gateways.map(async (g) => connectSocket(g.url, await signToken())));
  sockets.push(a, b);
  await a.command('subscribe', { stream });
  await b.command('subscribe', { stream });
  expect(await a.command('chat', { botId: 'redis-restart', content: 'before' })).toMatchObject({ ok: true });
  await waitFor(() => b.events.some((e) => e.type === 'done'), { message: 'first run done' });

  await system.redis.stop?.();
  await waitFor(async () => (await Promise.all(system.gateways.map((g) => readyStatus(g.url)))).every((s) => s === 503), { message: 'gateways not ready' });
  await waitFor(async () => (await readyStatus(system.workers[0].url)) === 503, { message: 'worker not ready' });
  expect(await a.command('chat', { botId: 'redis-restart', content: 'while down' })).toMatchObject({
    ok: false,
    error: { code: 'UNAVAILABLE', retryAfterMs: expect.any(Number) },
  });

  await system.redis.start?.();
  // The waitFor's message carries every pod's last answer (which check is red) when it times out.
  await waitFor(
    async () => {
      const answers = await Promise.all([...system.gateways, ...system.workers].map((p) => readiness(p.url)));
      if (!answers.every((a) => a.status === 200)) throw new Error(JSON.stringify(answers));
      return true;
    },
    {
      message: 'everything ready again',
      timeoutMs: 20_000,
    },
  );
  const before = a.events.length;
  expect(await a.command('chat', { botId: 'redis-restart', content: 'after' })).toMatchObject({ ok: true });
  await waitFor(() => [a, b].every((s) => s.events.filter((e) => e.type === 'done').length === 2), {
    message: 'second run done on both pods',
    timeoutMs: 20_000,
  });
  // History survived (AOF): the stream went on from where it was, on both pods.
  for (const s of [a, b]) expect(seqsOf(s.events, stream)).toEqual(range(1, s.events.length));
  expect(a.events.length).toBeGreaterThan(before);
});

describe.each(SDK_TRANSPORTS)('the SDK over %s', (transport) => {
  it('rides through a pod kill and a Redis restart with a gapless store', async () => {
    const stream: StreamName = 'bot:sdk-faults';
    const urls = system.gateways.map((g) => g.url);
    const client = sdkClient(transport, { url: urls, token: () => signToken({ sub: 'sdk' }), backoff: { baseMs: 50, maxMs: 500 }, commandTimeoutMs: 20_000 });
    clients.push(client);
    const seen: number[] = [];
    client.on('event', (e) => seen.push(e.seq));
    const store = await client.subscribe(stream);
    expect(client.hello?.serverId).toBe('pod-1');

    const publisher = system.publisher();
    const log: Array<{ draft: BotEvent; published: PublishedEvent }> = [];
    const publish = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const draft = thinking(log.length + 1);
        log.push({ draft, published: await publisher.publish(stream, draft) });
      }
    };
    await publish(30);
    await waitFor(() => store.seq === 30, { message: 'store at 30' });

    await system.gateways[0].kill();
    // Sent while the client has no connection: it goes out, with its id, once it has one.
    const session = client.command('new_session', { botId: 'elsewhere', title: 'sent while reconnecting' });
    await publish(30);
    await waitFor(() => client.hello?.serverId === 'pod-2' && store.seq === 60, { message: 'store at 60 through pod-2', timeoutMs: 20_000 });
    await expect(session).resolves.toEqual({ sessionId: expect.any(String) });

    const resyncs: string[] = [];
    client.on('resync', ({ reason }) => resyncs.push(reason));
    const epochBefore = store.epoch;
    await system.redis.restart?.();
    await publish(30);
    await waitFor(() => store.seq === 90, { message: 'store at 90 after the Redis restart', timeoutMs: 20_000 });

    // A restarted Redis is a new lifetime of the master (a new replication id). The gateway
    // cannot tell a clean restart from one that lost acknowledged writes (appendfsync
    // everysec, RDB), so the stream goes on under a new epoch whose seqs continue from the
    // surviving head, and the SDK takes one snapshot there: no event is lost (the snapshot
    // is the fold of all of them, below), none is seen twice, the seqs never go back.
    expect(store.epoch).not.toBe(epochBefore);
    expect(resyncs).toContain('epoch');
    expect(seen.slice(0, 60)).toEqual(range(1, 60));
    const afterSnapshot = seen.slice(60);
    expect(afterSnapshot).toEqual(range(91 - afterSnapshot.length, 90));
    expect(store.duplicatesDropped).toBeGreaterThanOrEqual(0);
    expect(store.state).toEqual(
      foldEvents(
        'bot',
        initialState('bot'),
        log.map(({ draft, published }) => ({ ...draft, ts: published.ts })),
      ),
    );
    // Commands work after all that, and presence lost the dead pod's connection within the
    // bound (three missed beats of 500 ms).
    await waitFor(
      async () => JSON.stringify(await client.command('presence', { stream })) === JSON.stringify({ members: [{ userId: 'sdk', connections: 1 }] }),
      {
        message: 'presence without the dead pod',
        timeoutMs: 5_000,
        intervalMs: 200,
      },
    );
  });

  it('takes a fresh snapshot when Redis lost its data (a new epoch)', async () => {
    const stream: StreamName = 'bot:sdk-epoch';
    const client = sdkClient(transport, { url: system.gateways[1].url, token: () => signToken({ sub: 'sdk' }), backoff: { baseMs: 50, maxMs: 500 } });
    clients.push(client);
    const resyncs: string[] = [];
    client.on('resync', ({ reason }) => resyncs.push(reason));
    const store = await client.subscribe(stream);
    const publisher = system.publisher();
    for (let i = 1; i <= 5; i++) await publisher.publish(stream, { type: 'session_created', payload: { sessionId: `old-${i}`, title: 'old' } });
    await waitFor(() => store.seq === 5);
    const oldEpoch = store.epoch;

    await system.redis.restart?.({ wipe: true });
    await waitFor(async () => (await readyStatus(system.gateways[1].url)) === 200, { message: 'gateway ready', timeoutMs: 20_000 });
    const fresh = await publisher.publish(stream, { type: 'session_created', payload: { sessionId: 'new-1', title: 'new' } });
    await waitFor(() => store.epoch === fresh.epoch && store.seq === 1 && store.status === 'live', { message: 'store on the new epoch', timeoutMs: 20_000 });
    expect(store.epoch).not.toBe(oldEpoch);
    expect(store.state.sessions.map((s) => s.sessionId)).toEqual(['new-1']);
    expect(resyncs).toContain('epoch');
  });
});
