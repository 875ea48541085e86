import { waitFor } from '@app/runtime';
import { connectSocket, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/** The command id is the idempotency key (PROTOCOL.md §3), across pods and connections. */
let system: TestSystem;
const sockets: TestSocket[] = [];
beforeAll(async () => {
  system = await startSystem({ gateways: 2, workers: 1 });
});
afterAll(async () => {
  sockets.forEach((s) => s.close());
  await system?.stop();
});

async function connect(pod: number, sub = 'carol'): Promise<TestSocket> {
  const socket = await connectSocket(system.gateways[pod].url, await signToken({ sub, scope: ['bot:*'] }));
  sockets.push(socket);
  return socket;
}

const runsStarted = (socket: TestSocket) => socket.events.filter((e) => e.type === 'run_started').length;

it('returns the first result for a retry, on the same pod or another, with one effect', async () => {
  const [watcher, a, b] = await Promise.all([connect(0, 'watcher'), connect(0), connect(1)]);
  await watcher.command('subscribe', { stream: 'bot:idem-1' });
  const first = await a.command('chat', { botId: 'idem-1', content: 'once' }, 'chat-retry-1');
  expect(first).toMatchObject({ ok: true });
  // The client lost the ack and retried: on its own pod, after a reconnect to the other pod.
  expect(await a.command('chat', { botId: 'idem-1', content: 'once' }, 'chat-retry-1')).toEqual(first);
  expect(await b.command('chat', { botId: 'idem-1', content: 'once' }, 'chat-retry-1')).toEqual(first);
  await waitFor(() => watcher.events.some((e) => e.type === 'done'), { message: 'the run finished' });
  // Another user's command with the same id is a different command.
  const other = await connect(1, 'dave');
  const theirs = await other.command<{ runId: string }>('chat', { botId: 'idem-1', content: 'once' }, 'chat-retry-1');
  if (!theirs.ok || !first.ok) throw new Error(JSON.stringify({ theirs, first }));
  expect(theirs.result.runId).not.toBe((first.result as { runId: string }).runId);
  await waitFor(() => watcher.events.filter((e) => e.type === 'done').length === 2, { message: 'the second user run finished' });
  expect(runsStarted(watcher)).toBe(2);
  expect(watcher.events.filter((e) => e.type === 'session_created')).toHaveLength(2);
});

it('gives two racing copies on two pods one effect and the same answer', async () => {
  const watcher = await connect(1, 'watcher');
  await watcher.command('subscribe', { stream: 'bot:idem-2' });
  for (let round = 0; round < 5; round++) {
    const [a, b] = await Promise.all([connect(0), connect(1)]);
    const id = `race-${round}`;
    const [ackA, ackB] = await Promise.all([
      a.command('chat', { botId: 'idem-2', content: `race ${round}` }, id),
      b.command('chat', { botId: 'idem-2', content: `race ${round}` }, id),
    ]);
    expect(ackA).toMatchObject({ ok: true });
    expect(ackB).toEqual(ackA);
  }
  await waitFor(() => watcher.events.filter((e) => e.type === 'done').length === 5, { message: 'five runs finished' });
  expect(runsStarted(watcher)).toBe(5);
  const runIds = watcher.events.filter((e) => e.type === 'run_started').map((e) => (e.payload as { runId: string }).runId);
  expect(new Set(runIds).size).toBe(5);
});
