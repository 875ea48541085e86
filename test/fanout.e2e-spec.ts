import type { BotEvent, Envelope } from '@app/protocol';
import { foldEvents, initialState } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { publishHttp } from './support/http';
import { connectSocket, range, seqsOf, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * The whole path through separate processes: a worker publishes, Redis sequences, two
 * gateway pods fan out, and a client on each pod sees the same stream.
 */
let system: TestSystem;
const sockets: TestSocket[] = [];
beforeAll(async () => {
  system = await startSystem({ gateways: 2, workers: 1 });
});
afterAll(async () => {
  sockets.forEach((s) => s.close());
  await system?.stop();
});

async function connect(pod: number, scope: string[] = ['bot:*', 'dag:*']): Promise<TestSocket> {
  const socket = await connectSocket(system.gateways[pod].url, await signToken({ sub: `user-${pod}`, scope }));
  sockets.push(socket);
  return socket;
}

const fold = (events: Envelope[]) => foldEvents('bot', initialState('bot'), events);

describe('the realtime path', () => {
  it('delivers a chat run from the worker to a client on each pod, identically', async () => {
    const [a, b] = await Promise.all([connect(0), connect(1)]);
    expect([a.hello.serverId, b.hello.serverId]).toEqual(['pod-1', 'pod-2']);
    for (const s of [a, b]) expect(await s.command('subscribe', { stream: 'bot:echo-1' })).toMatchObject({ ok: true, result: { seq: 0 } });

    const ack = await a.command<{ runId: string; sessionId: string; jobId: string }>('chat', { botId: 'echo-1', content: 'hello from pod one' });
    expect(ack.ok).toBe(true);
    if (!ack.ok) return;
    await waitFor(() => [a, b].every((s) => s.events.some((e) => e.type === 'done')), { message: 'done on both pods' });

    expect(a.events).toEqual(b.events);
    const seqs = seqsOf(a.events, 'bot:echo-1');
    expect(seqs).toEqual(range(1, seqs.length));
    const types = a.events.map((e) => e.type);
    expect(types.filter((t) => t === 'done')).toHaveLength(1);
    expect(types.slice(0, 3)).toEqual(['session_created', 'run_started', 'message']);
    const chunks = a.events.filter((e) => e.type === 'message' && (e.payload as { role: string }).role === 'assistant');
    expect(new Set(chunks.map((c) => (c.payload as { messageId: string }).messageId)).size).toBe(1);
    expect(chunks.every((c) => (c.payload as { delta: boolean }).delta)).toBe(true);

    const state = fold(a.events);
    expect(state.activeRuns).toEqual({});
    expect(state.recentRuns).toEqual([expect.objectContaining({ runId: ack.result.runId, status: 'completed' })]);
    const reply = chunks.map((c) => (c.payload as { content: string }).content).join('');
    expect(reply).toBe('Echo: hello from pod one');

    const history = await b.command<{ messages: Array<{ role: string; content: string }> }>('switch_session', { sessionId: ack.result.sessionId });
    expect(history).toMatchObject({
      ok: true,
      result: {
        messages: [
          { role: 'user', content: 'hello from pod one' },
          { role: 'assistant', content: reply },
        ],
      },
    });
  });

  it('cancels a running run: it ends with exactly one done {status: cancelled}', async () => {
    const [a, b] = await Promise.all([connect(0), connect(1)]);
    await a.command('subscribe', { stream: 'bot:echo-2' });
    await b.command('subscribe', { stream: 'bot:echo-2' });
    const ack = await a.command<{ runId: string }>('chat', { botId: 'echo-2', content: 'x'.repeat(2000) });
    if (!ack.ok) throw new Error(JSON.stringify(ack));
    await waitFor(() => a.events.some((e) => e.type === 'message' && (e.payload as { role: string }).role === 'assistant'), { message: 'first chunk' });
    expect(await b.command('cancel', { runId: ack.result.runId })).toEqual({ ok: true, result: {} });
    await waitFor(() => b.events.some((e) => e.type === 'done'), { message: 'done' });
    const done = b.events.filter((e) => e.type === 'done');
    expect(done.map((e) => (e.payload as { status: string }).status)).toEqual(['cancelled']);
    // The (coalesced) chunks streamed before the cancel are a prefix of the reply, all before `done`.
    const streamed = b.events.filter((e) => e.type === 'message' && (e.payload as { role: string }).role === 'assistant');
    expect(`Echo: ${'x'.repeat(2000)}`.startsWith(streamed.map((e) => (e.payload as { content: string }).content).join(''))).toBe(true);
    expect(b.events.at(-1)?.type).toBe('done');
    // The run ended: no further events, and cancelling again is a conflict.
    const again = await a.command('cancel', { runId: ack.result.runId });
    expect(again).toMatchObject({ ok: false, error: { code: 'CONFLICT' } });
    expect(a.events).toEqual(b.events);
  });

  it('keeps seqs gapless and strictly ordered on the wire with 4 concurrent publishers', async () => {
    const stream = 'bot:storm-4';
    const [a, b] = await Promise.all([connect(0), connect(1)]);
    await a.command('subscribe', { stream });
    await b.command('subscribe', { stream });
    const draft = (i: number): BotEvent => ({ type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i}` } });
    const direct = [system.publisher(), system.publisher()];
    const perPublisher = 100;
    await Promise.all([
      ...direct.map((publisher, p) => Promise.all(range(1, perPublisher).map((i) => publisher.publish(stream, draft(p * 1000 + i))))),
      ...[0, 1].map((pod) =>
        Promise.all(
          range(1, perPublisher).map((i) =>
            publishHttp(system.gateways[pod].url, stream, draft(5000 + pod * 1000 + i)).then((r) => expect(r.status).toBe(201)),
          ),
        ),
      ),
    ]);
    const total = 4 * perPublisher;
    await waitFor(() => a.events.length === total && b.events.length === total, { message: `${total} events on both pods` });
    expect(seqsOf(a.events, stream)).toEqual(range(1, total));
    expect(seqsOf(b.events, stream)).toEqual(range(1, total));
    expect(a.events).toEqual(b.events);
  });

  it('replays exactly the missed events after a reconnect to the other pod', async () => {
    const stream = 'bot:replay-1';
    const publisher = system.publisher();
    const a = await connect(0);
    await a.command('subscribe', { stream });
    for (const i of range(1, 5)) await publisher.publish(stream, { type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i}` } });
    await waitFor(() => a.events.length === 5);
    const last = a.events[4];
    a.close();
    for (const i of range(6, 9)) await publisher.publish(stream, { type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i}` } });

    const b = await connect(1);
    const ack = await b.command('subscribe', { stream, sinceSeq: last.seq, epoch: last.epoch, lastId: last.id });
    expect(ack).toEqual({ ok: true, result: { stream, epoch: last.epoch, seq: 9, replayed: 4 } });
    await publisher.publish(stream, { type: 'thinking', payload: { sessionId: 's', runId: 'r', content: '10' } });
    await waitFor(() => b.events.length === 5);
    expect(seqsOf(b.events, stream)).toEqual(range(6, 10));
  });

  it('answers a reconnect from the pod feed when the pod already carries the stream, with the same replay', async () => {
    const stream = 'bot:replay-feed-1';
    const publisher = system.publisher();
    const thinking = (i: number): BotEvent => ({ type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i}` } });
    // A watcher keeps pod 1's feed of the stream alive; the reconnecting client comes back there.
    const watcher = await connect(1);
    await watcher.command('subscribe', { stream });
    const a = await connect(0);
    await a.command('subscribe', { stream });
    for (const i of range(1, 3)) await publisher.publish(stream, thinking(i));
    await waitFor(() => a.events.length === 3 && watcher.events.length === 3);
    const last = a.events[2];
    a.close();
    for (const i of range(4, 6)) await publisher.publish(stream, thinking(i));
    await waitFor(() => watcher.events.length === 6);

    const fromFeed = async () => {
      const text = await (await fetch(`${system.gateways[1].url}/metrics`, { headers: { connection: 'close' } })).text();
      return Number(/rtgw_subscribe_catchups_total\{mode="replay",reason="resume_from_feed"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await fromFeed();
    const b = await connect(1);
    const ack = await b.command('subscribe', { stream, sinceSeq: last.seq, epoch: last.epoch, lastId: last.id });
    expect(ack).toEqual({ ok: true, result: { stream, epoch: last.epoch, seq: 6, replayed: 3 } });
    expect(await fromFeed()).toBe(before + 1);
    await publisher.publish(stream, thinking(7));
    await waitFor(() => b.events.length === 4);
    expect(b.events).toEqual(watcher.events.slice(3));
  });

  it('answers a lastId that does not match history with a fresh snapshot', async () => {
    const stream = 'bot:diverged-1';
    const publisher = system.publisher();
    const first = await publisher.publish(stream, { type: 'session_created', payload: { sessionId: 's1', title: 'one' } });
    await publisher.publish(stream, { type: 'session_created', payload: { sessionId: 's2', title: 'two' } });
    const b = await connect(1);
    const ack = await b.command<{ snapshot?: { sessions: unknown[] }; replayed: number; seq: number }>('subscribe', {
      stream,
      sinceSeq: 1,
      epoch: first.epoch,
      lastId: 'an-id-history-never-had',
    });
    expect(ack.ok).toBe(true);
    if (!ack.ok) return;
    expect(ack.result).toMatchObject({ seq: 2, replayed: 0 });
    expect(ack.result.snapshot?.sessions).toEqual([expect.objectContaining({ sessionId: 's1' }), expect.objectContaining({ sessionId: 's2' })]);
    expect(b.events).toEqual([]);
  });
});
