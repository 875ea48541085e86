import { RealtimeClient } from '@app/client';
import type { BotEvent } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { io } from 'socket.io-client';
import { openPlain } from './support/plain-ws';
import { SDK_TRANSPORTS, type SdkTransport, sdkClient } from './support/sdk';
import { range } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * SIGTERM on a gateway pod: readiness goes red, new connections are refused, sockets are
 * told and let go in batches, and they carry on on another pod without missing anything.
 */
let system: TestSystem;
const clients: RealtimeClient[] = [];
beforeEach(async () => {
  system = await startSystem({ gateways: 2, workers: 1, env: { DRAIN_BATCH_SIZE: '3', DRAIN_BATCH_INTERVAL_MS: '250' } });
});
afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await system?.stop();
});

/** What a draining pod answers a new connection: Socket.IO's connect_error, or `/ws` closed 4409 (PROTOCOL.md §11). */
async function refusal(transport: SdkTransport, url: string): Promise<unknown> {
  if (transport === 'websocket') {
    const socket = await openPlain(url, { token: await signToken() });
    return { ...(await socket.closed), frames: socket.frames };
  }
  return new Promise<unknown>((resolve) => {
    const socket = io(url, { auth: { token: 'irrelevant' }, transports: ['websocket'], reconnection: false, forceNew: true });
    socket.once('connect_error', (error: Error & { data?: unknown }) => {
      socket.close();
      resolve(error.data);
    });
    socket.once('connect', () => {
      socket.close();
      resolve('connected');
    });
  });
}

const REFUSED: Record<SdkTransport, unknown> = {
  'socket.io': { code: 'UNAVAILABLE', message: 'this server is draining; connect to another' },
  websocket: { code: 4409, reason: 'DRAINING', frames: [] },
};

it.each(SDK_TRANSPORTS)('drains a pod gracefully: SDK clients over %s move to the other pod with gapless stores', async (transport) => {
  const stream = 'bot:drain-1';
  const [draining, other] = system.gateways;
  const statuses: string[] = [];
  const seen: number[][] = [];
  for (let i = 0; i < 12; i++) {
    const client = sdkClient(transport, { url: [draining.url, other.url], token: () => signToken({ sub: `u${i}` }), backoff: { baseMs: 50, maxMs: 500 } });
    const events: number[] = [];
    seen.push(events);
    client.on('event', (e) => events.push(e.seq));
    client.on('status', (s) => statuses.push(s));
    clients.push(client);
  }
  const stores = await Promise.all(clients.map((c) => c.subscribe(stream)));
  expect(clients.every((c) => c.hello?.serverId === 'pod-1')).toBe(true);

  const publisher = system.publisher();
  let published = 0;
  let publishing = true;
  const storm = (async () => {
    while (publishing) {
      const event: BotEvent = { type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${++published}` } };
      await publisher.publish(stream, event);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  await waitFor(() => stores.every((s) => s.seq > 10), { message: 'events flowing' });

  const exit = draining.stop();
  await waitFor(async () => (await fetch(`${draining.url}/readyz`, { headers: { connection: 'close' } }).catch(() => null))?.status === 503, {
    message: 'readiness red',
    intervalMs: 5,
  });
  expect(await refusal(transport, draining.url)).toEqual(REFUSED[transport]);

  expect(await exit).toBe(0);
  await waitFor(() => clients.every((c) => c.hello?.serverId === 'pod-2'), { message: 'every client on pod-2' });
  publishing = false;
  await storm;
  await waitFor(() => stores.every((s) => s.seq === published), { message: 'every store caught up' });
  // Each client saw every event once, in order, across the move (a resubscribe from its
  // position replays what it missed).
  for (const events of seen) expect(events).toEqual(range(1, published));
  expect(statuses.filter((s) => s === 'reconnecting')).toHaveLength(clients.length);
});

it('stops a worker gracefully: it turns unready, finishes its active run, then exits 0', async () => {
  const client = new RealtimeClient({ url: system.gateways[1].url, token: () => signToken({ sub: 'worker-drain' }) });
  clients.push(client);
  const store = await client.subscribe('bot:worker-drain');
  const chunks: string[] = [];
  client.on('message', (e) => {
    if (e.payload.role === 'assistant') chunks.push(e.payload.content);
  });
  const { runId } = await client.command('chat', { botId: 'worker-drain', content: 'y'.repeat(240) });
  await waitFor(() => chunks.length > 2, { message: 'the run is streaming' });

  const worker = system.workers[0];
  const exit = worker.stop();
  await waitFor(async () => (await fetch(`${worker.url}/readyz`, { headers: { connection: 'close' } }).catch(() => null))?.status !== 200, {
    message: 'worker unready',
    intervalMs: 5,
  });
  expect(await exit).toBe(0);
  // The run was not cut: it finished before the worker exited.
  expect(store.state.recentRuns).toEqual([expect.objectContaining({ runId, status: 'completed' })]);
  expect(chunks.join('')).toBe(`Echo: ${'y'.repeat(240)}`);
});
