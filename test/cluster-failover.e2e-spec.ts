import { DEFAULT_RETENTION, StreamHistory, streamKeys, type StreamPublisher } from '@app/backplane';
import { RealtimeClient } from '@app/client';
import { type BotEvent, type Envelope, foldEvents, initialState, type StreamName } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { connectSocket, range, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * Redis Cluster failovers under a live system (the `e2e-cluster` project only): two pods,
 * a worker, watchers on both pods, a publisher storming the stream whose master fails.
 * Sharded subscriptions must come back by themselves, feeds resync, and every watcher ends
 * with exactly what Redis kept: no gap, no duplicate, never a seq reused under an epoch.
 */
let system: TestSystem;
const sockets: TestSocket[] = [];
const clients: RealtimeClient[] = [];
beforeEach(async () => {
  system = await startSystem({ gateways: 2, workers: 1 });
});
afterEach(async () => {
  sockets.splice(0).forEach((s) => s.close());
  clients.splice(0).forEach((c) => c.close());
  await system?.stop();
});

const thinking = (i: number): BotEvent => ({ type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i} ` } });

/** Publishes until stopped; a publish that fails while the cluster moves is tried again. */
function storm(publisher: StreamPublisher, stream: StreamName) {
  let running = true;
  let failures = 0;
  const published: Array<{ draft: BotEvent; ts: number }> = [];
  const done = (async () => {
    for (let i = 1; running; i++) {
      const draft = thinking(i);
      for (;;) {
        try {
          const event = await publisher.publish(stream, draft);
          published.push({ draft, ts: event.ts });
          break;
        } catch {
          failures++;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }
  })();
  return {
    published,
    get failures() {
      return failures;
    },
    stop: async () => {
      running = false;
      await done;
    },
  };
}

async function head(stream: StreamName): Promise<{ epoch: string; seq: number }> {
  const position = await new StreamHistory(system.client, DEFAULT_RETENTION).head(stream);
  if (!position) throw new Error(`${stream} has no history`);
  return position;
}

async function readyStatus(url: string): Promise<number> {
  const response = await fetch(`${url}/readyz`, { headers: { connection: 'close' } }).catch(() => null);
  return response?.status ?? 0;
}

it('a planned failover (CLUSTER FAILOVER) of the stream’s master: watchers on both pods get every event once, in order', async () => {
  const stream: StreamName = 'bot:planned-failover';
  const token = await signToken();
  const watchers = await Promise.all(system.gateways.map((g) => connectSocket(g.url, token)));
  sockets.push(...watchers);
  for (const w of watchers) expect(await w.command('subscribe', { stream })).toMatchObject({ ok: true });

  const publishing = storm(system.publisher(), stream);
  await waitFor(() => watchers.every((w) => w.events.length > 30), { message: 'events flowing' });
  await system.redis.cluster!.failover(`{${stream}}`);
  const atFailover = publishing.published.length;
  await waitFor(() => publishing.published.length > atFailover + 30, { message: 'publishing on the new master', timeoutMs: 20_000 });
  await publishing.stop();

  const last = await head(stream);
  await waitFor(() => watchers.every((w) => w.events.at(-1)?.seq === last.seq), { message: 'every watcher at the head', timeoutMs: 20_000 });
  for (const w of watchers) {
    // Nothing was lost: the new master's epoch continues the seqs, so the wire is 1..N.
    expect(w.events.map((e) => e.seq)).toEqual(range(1, last.seq));
    expect(w.events.at(-1)?.epoch).toBe(last.epoch);
  }
  expect(last.seq).toBe(publishing.published.length);
});

it('a master killed mid-stream: readiness goes red, comes back by itself, and SDK watchers end exactly on what Redis kept', async () => {
  const stream: StreamName = 'bot:master-kill';
  const urls = system.gateways.map((g) => g.url);
  const stores = await Promise.all(
    [0, 1].map(async (i) => {
      const client = new RealtimeClient({ url: [urls[i], urls[1 - i]], token: () => signToken({ sub: `sdk-${i}` }), backoff: { baseMs: 50, maxMs: 500 } });
      clients.push(client);
      const seen: Envelope[] = [];
      client.on('event', (e) => seen.push(e));
      return { store: await client.subscribe(stream), seen };
    }),
  );
  // A raw watcher too: it must never receive a seq it already had under the same epoch.
  const raw = await connectSocket(urls[0], await signToken());
  sockets.push(raw);
  await raw.command('subscribe', { stream });

  const publishing = storm(system.publisher(), stream);
  await waitFor(() => stores.every(({ store }) => store.seq > 30), { message: 'events flowing' });
  const master = await system.redis.cluster!.masterOf(`{${stream}}`);
  await master.stop(true);
  await waitFor(async () => (await Promise.all(urls.map(readyStatus))).every((s) => s === 503), { message: 'pods not ready while a master is down' });
  await system.redis.cluster!.waitHealthy();
  await waitFor(async () => (await Promise.all(urls.map(readyStatus))).every((s) => s === 200), { message: 'pods ready again', timeoutMs: 30_000 });
  const afterRecovery = publishing.published.length;
  await waitFor(() => publishing.published.length > afterRecovery + 30, { message: 'publishing after the failover', timeoutMs: 20_000 });
  await publishing.stop();
  await master.restart(); // it rejoins as a replica

  const last = await head(stream);
  await waitFor(() => stores.every(({ store }) => store.epoch === last.epoch && store.seq === last.seq), { message: 'stores at the head', timeoutMs: 20_000 });
  // What Redis kept, folded from a fresh snapshot, is what every watcher holds.
  const fresh = new RealtimeClient({ url: urls[1], token: () => signToken({ sub: 'late' }) });
  clients.push(fresh);
  const truth = await fresh.subscribe(stream);
  for (const { store } of stores) expect(store.state).toEqual(truth.state);
  // Without a lossy failover that is every event published, in order.
  const kept = publishing.published.slice(0, last.seq);
  if (last.seq === publishing.published.length) {
    expect(truth.state).toEqual(
      foldEvents(
        'bot',
        initialState('bot'),
        kept.map(({ draft, ts }) => ({ ...draft, ts })),
      ),
    );
  }
  // No (epoch, seq) twice on the raw socket, and seqs only grow within an epoch.
  const seenPairs = new Set(raw.events.map((e) => `${e.epoch}/${e.seq}`));
  expect(seenPairs.size).toBe(raw.events.length);
  for (let i = 1; i < raw.events.length; i++) {
    if (raw.events[i].epoch === raw.events[i - 1].epoch) expect(raw.events[i].seq).toBe(raw.events[i - 1].seq + 1);
  }
  expect(await system.client.exists(streamKeys(stream).meta)).toBe(1);
});
