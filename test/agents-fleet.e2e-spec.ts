import { type ConnectionOptions, Job, Queue } from 'bullmq';
import { QUEUE_PREFIX, QUEUES } from '@app/backplane';
import { type BotEvent, type BotState, type Envelope, foldEvents } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { type AppProcess, startWorker } from './support/processes';
import { connectSocket, range, seqsOf, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken, TEST_API_KEY } from './support/tokens';

/**
 * Bots on a fleet (PROTOCOL.md §3–§5, §9): two gateway pods, TWO workers, real Redis,
 * dashboards as plain Socket.IO clients spread over the pods. What several watchers of one
 * bot see, a dashboard joining mid-run, cancel, sessions, inbound messages, per-model prices,
 * tool failures, and a worker killed mid-run.
 */
const PRICED_MODEL = 'demo-priced';
const PRICE = { prompt: 0.5, completion: 1.5 };
const WORKER_ENV = {
  // A killed worker's run is taken by the other one after 4–8 s instead of up to a minute
  // (not much shorter: a worker whose event loop stalls past the lock loses its runs).
  JOB_LOCK_MS: '4000',
  AGENT_PRICES: JSON.stringify({ [PRICED_MODEL]: PRICE }),
};
let system: TestSystem;
const sockets: TestSocket[] = [];
const extraWorkers: AppProcess[] = [];
beforeAll(async () => {
  system = await startSystem({ gateways: 2, workers: 2, workerEnv: WORKER_ENV });
});
afterAll(async () => {
  sockets.forEach((s) => s.close());
  await Promise.all(extraWorkers.map((w) => w.kill()));
  await system?.stop();
});

type Payload<T extends BotEvent['type']> = Extract<BotEvent, { type: T }>['payload'];

async function dashboard(pod: number, sub: string, botId: string, query?: Record<string, string>): Promise<TestSocket> {
  const socket = await connectSocket(system.gateways[pod].url, await signToken({ sub, scope: [`bot:${botId}`] }), { query });
  sockets.push(socket);
  return socket;
}

async function subscribed(pod: number, sub: string, botId: string): Promise<TestSocket> {
  const socket = await dashboard(pod, sub, botId);
  expect(await socket.command('subscribe', { stream: `bot:${botId}` })).toMatchObject({ ok: true });
  return socket;
}

const ofRun = (socket: TestSocket, runId: string): Envelope[] => socket.events.filter((e) => (e.payload as { runId?: string }).runId === runId);
const payloadsOf = <T extends BotEvent['type']>(events: Envelope[], type: T): Array<Payload<T>> =>
  events.filter((e) => e.type === type).map((e) => e.payload as Payload<T>);
const assistantDeltas = (events: Envelope[]) => payloadsOf(events, 'message').filter((m) => m.role === 'assistant');
const assistantText = (events: Envelope[]) =>
  assistantDeltas(events)
    .map((m) => m.content)
    .join('');

async function chat(socket: TestSocket, payload: Record<string, unknown>): Promise<{ runId: string; sessionId: string }> {
  const ack = await socket.command<{ runId: string; sessionId: string }>('chat', payload);
  if (!ack.ok) throw new Error(`chat refused: ${JSON.stringify(ack)}`);
  return ack.result;
}

async function doneOf(socket: TestSocket, runId: string, timeoutMs = 20_000): Promise<Payload<'done'>> {
  const envelope = await waitFor(() => ofRun(socket, runId).find((e) => e.type === 'done'), { message: `done of ${runId}`, timeoutMs });
  return envelope.payload as Payload<'done'>;
}

/**
 * A run's record turns final just after its `done` goes out (a run that dies in between still
 * ends once): a cancel sent the moment `done` arrives may still be accepted. The first one
 * refused.
 */
async function cancelRefused(socket: TestSocket, runId: string) {
  return waitFor(
    async () => {
      const ack = await socket.command('cancel', { runId });
      return ack.ok ? null : ack;
    },
    { message: `a cancel of ${runId} refused` },
  );
}

it('three dashboards on one bot, over both pods, see the same gapless envelopes of a run with a tool call', async () => {
  const botId = 'fleet-watch';
  const watchers = await Promise.all([subscribed(0, 'ann', botId), subscribed(1, 'ben', botId), subscribed(1, 'cid', botId)]);
  const { runId } = await chat(watchers[0], { botId, content: '/tool calculator {"expression":"6*7"}' });
  await Promise.all(watchers.map((w) => doneOf(w, runId)));

  const [a, b, c] = watchers.map((w) => w.events);
  expect(b).toEqual(a);
  expect(c).toEqual(a);
  expect(seqsOf(a, `bot:${botId}`)).toEqual(range(1, a.length));
  expect(new Set(a.map((e) => e.id)).size).toBe(a.length);
  const run = ofRun(watchers[0], runId);
  expect(run.map((e) => e.type).filter((t) => t !== 'message')).toEqual(['run_started', 'thinking', 'tool_start', 'tool_end', 'usage', 'done']);
  expect(payloadsOf(run, 'tool_end')).toEqual([expect.objectContaining({ result: '42', success: true })]);
  expect(assistantText(run)).toBe('The calculator tool returned: 42');
});

it('a dashboard joining mid-run gets a snapshot equal to the early watcher’s fold up to its seq, then deltas; both end equal', async () => {
  const botId = 'fleet-late';
  const early = await dashboard(0, 'ann', botId);
  const earlyAck = await early.command<{ seq: number; snapshot: BotState }>('subscribe', { stream: `bot:${botId}` });
  if (!earlyAck.ok) throw new Error(JSON.stringify(earlyAck));
  const { runId } = await chat(early, { botId, content: '/slow 60' });
  // Mid-run: some of the reply is out, most is not (60 chunks ~100 ms apart: seconds to join in).
  await waitFor(() => assistantDeltas(ofRun(early, runId)).length >= 3, { message: 'the reply streaming' });

  const late = await dashboard(1, 'ben', botId);
  const lateAck = await late.command<{ seq: number; snapshot: BotState }>('subscribe', { stream: `bot:${botId}` });
  if (!lateAck.ok) throw new Error(JSON.stringify(lateAck));
  const { seq, snapshot } = lateAck.result;
  expect(snapshot.activeRuns[runId]).toBeDefined();
  await waitFor(() => early.events.some((e) => e.seq >= seq), { message: `the early watcher at seq ${seq}` });
  const foldTo = (upTo: number) =>
    foldEvents(
      'bot',
      earlyAck.result.snapshot,
      early.events.filter((e) => e.seq <= upTo),
    );
  expect(snapshot).toEqual(foldTo(seq));

  await Promise.all([doneOf(early, runId), doneOf(late, runId)]);
  expect(late.events[0].seq).toBe(seq + 1);
  expect(seqsOf(late.events, `bot:${botId}`)).toEqual(range(seq + 1, seq + late.events.length));
  expect(late.events).toEqual(early.events.filter((e) => e.seq > seq));
  const end = early.events.at(-1)?.seq ?? 0;
  expect(foldEvents('bot', snapshot, late.events)).toEqual(foldTo(end));
  expect(foldTo(end).recentRuns).toEqual([expect.objectContaining({ runId, status: 'completed' })]);
});

it('cancel from the other pod stops a running run: done cancelled, exactly once, nothing of it after', async () => {
  const botId = 'fleet-cancel';
  const [a, b] = await Promise.all([subscribed(0, 'ann', botId), subscribed(1, 'ben', botId)]);
  const { runId } = await chat(a, { botId, content: '/slow 200' });
  await waitFor(() => assistantDeltas(ofRun(a, runId)).length >= 2, { message: 'the reply streaming' });
  expect(await b.command('cancel', { runId })).toEqual({ ok: true, result: {} });
  expect(await doneOf(a, runId)).toMatchObject({ status: 'cancelled' });
  await doneOf(b, runId);
  // A second cancel meets a finished run; anything still in flight would land after done.
  expect(await cancelRefused(a, runId)).toMatchObject({ ok: false, error: { code: 'CONFLICT' } });
  const run = ofRun(a, runId);
  expect(payloadsOf(run, 'done')).toHaveLength(1);
  expect(run.at(-1)?.type).toBe('done');
  expect(assistantDeltas(run).length).toBeLessThan(200);
  expect(b.events).toEqual(a.events);
});

describe('sessions', () => {
  it('new_session, two chats in it, switch_session from the other pod and resume_session at the handshake return its history', async () => {
    const botId = 'fleet-sessions';
    const [a, b] = await Promise.all([subscribed(0, 'ann', botId), subscribed(1, 'ann', botId)]);
    const created = await a.command<{ sessionId: string }>('new_session', { botId, title: 'Quarterly report' });
    if (!created.ok) throw new Error(JSON.stringify(created));
    const { sessionId } = created.result;
    await waitFor(() => b.events.some((e) => e.type === 'session_created'), { message: 'session_created on the other pod' });
    expect(payloadsOf(b.events, 'session_created')).toEqual([{ sessionId, title: 'Quarterly report' }]);

    const first = await chat(a, { botId, content: 'first question', sessionId });
    expect(first.sessionId).toBe(sessionId);
    await doneOf(a, first.runId);
    const second = await chat(b, { botId, content: 'second question', sessionId });
    await doneOf(a, second.runId);
    // The session was announced once: chats in it open nothing new.
    expect(payloadsOf(a.events, 'session_created')).toHaveLength(1);

    const expected = [
      expect.objectContaining({ role: 'user', content: 'first question', runId: first.runId }),
      expect.objectContaining({ role: 'assistant', content: 'Echo: first question', runId: first.runId }),
      expect.objectContaining({ role: 'user', content: 'second question', runId: second.runId }),
      expect.objectContaining({ role: 'assistant', content: 'Echo: second question', runId: second.runId }),
    ];
    const switched = await b.command<{ sessionId: string; messages: unknown[] }>('switch_session', { sessionId });
    expect(switched).toMatchObject({ ok: true, result: { sessionId, messages: expected } });
    if (switched.ok) expect(switched.result.messages).toHaveLength(4);

    const resumed = await dashboard(1, 'ann', botId, { resume_session: sessionId });
    const [history] = (await waitFor(() => resumed.received.find((r) => r.event === 'session_history'), { message: 'session_history' })).args;
    expect(history).toEqual({ sessionId, botId, messages: expected });
  });

  it('a chat without sessionId opens a session of its own, announced before its run', async () => {
    const botId = 'fleet-sessions-2';
    const a = await subscribed(1, 'ann', botId);
    const { runId, sessionId } = await chat(a, { botId, content: 'no session given' });
    await doneOf(a, runId);
    const types = a.events.map((e) => e.type);
    expect(types.slice(0, 2)).toEqual(['session_created', 'run_started']);
    expect(payloadsOf(a.events, 'session_created')).toEqual([{ sessionId, title: 'no session given' }]);
    expect(payloadsOf(a.events, 'run_started')[0]).toMatchObject({ runId, sessionId });
    const again = await chat(a, { botId, content: 'and another' });
    expect(again.sessionId).not.toBe(sessionId);
    await doneOf(a, again.runId);
    expect(payloadsOf(a.events, 'session_created').map((p) => p.sessionId)).toEqual([sessionId, again.sessionId]);
  });
});

it('an inbound platform message is published as platform_message and answered by a run on the same stream, seen alike on both pods', async () => {
  const botId = 'fleet-inbound';
  const [a, b] = await Promise.all([subscribed(0, 'ann', botId), subscribed(1, 'ben', botId)]);
  const response = await fetch(`${system.gateways[1].url}/v1/bots/${botId}/inbound`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json', connection: 'close' },
    body: JSON.stringify({ platform: 'telegram', chatId: '991', content: 'hello from telegram', userId: 'tg-5' }),
  });
  expect(response.status).toBe(202);
  const accepted = (await response.json()) as { sessionId: string; runId: string; seq: number };
  await Promise.all([doneOf(a, accepted.runId), doneOf(b, accepted.runId)]);
  expect(b.events).toEqual(a.events);

  const message = a.events.find((e) => e.type === 'platform_message');
  expect(message).toMatchObject({
    seq: accepted.seq,
    payload: { sessionId: accepted.sessionId, platform: 'telegram', chatId: '991', role: 'user', content: 'hello from telegram' },
  });
  const run = ofRun(a, accepted.runId);
  // The platform message is the user's turn: the run publishes no user message of its own.
  expect(payloadsOf(run, 'message').every((m) => m.role === 'assistant')).toBe(true);
  expect(run[0]).toMatchObject({ type: 'run_started', payload: { sessionId: accepted.sessionId } });
  expect(run[0].seq).toBeGreaterThan(accepted.seq);
  expect(assistantText(run)).toBe('Echo: hello from telegram');
  expect(payloadsOf(run, 'done')).toEqual([expect.objectContaining({ status: 'completed', replyToId: message?.id })]);
});

it('tool failures (an unknown tool, malformed arguments) are reported by tool_end and the run goes on to complete', async () => {
  const botId = 'fleet-tools';
  const a = await subscribed(0, 'ann', botId);
  const unknown = await chat(a, { botId, content: '/tool teleport {"to":"mars"}' });
  await doneOf(a, unknown.runId);
  const malformed = await chat(a, { botId, content: '/tool calculator {"expression":' });
  await doneOf(a, malformed.runId);

  for (const [runId, why] of [
    [unknown.runId, 'unknown tool teleport'],
    [malformed.runId, 'the arguments are not a JSON object'],
  ]) {
    const run = ofRun(a, runId);
    expect(run.map((e) => e.type).filter((t) => t !== 'message')).toEqual(['run_started', 'thinking', 'tool_start', 'tool_end', 'usage', 'done']);
    expect(payloadsOf(run, 'tool_end')).toEqual([expect.objectContaining({ success: false, result: { error: why } })]);
    expect(assistantText(run)).toMatch(new RegExp(`tool failed: ${why}$`));
    expect(payloadsOf(run, 'done')).toEqual([expect.objectContaining({ status: 'completed' })]);
  }
  expect(payloadsOf(ofRun(a, malformed.runId), 'tool_start')[0]).toMatchObject({ tool: 'calculator', args: '{"expression":' });
});

it('prices runs from AGENT_PRICES by model; the bot snapshot adds up the session', async () => {
  const botId = 'fleet-prices';
  const a = await subscribed(0, 'ann', botId);
  const first = await chat(a, { botId, content: '/tool calculator {"expression":"1+1"}', model: PRICED_MODEL });
  await doneOf(a, first.runId);
  const second = await chat(a, { botId, content: 'what did it cost?', model: PRICED_MODEL, sessionId: first.sessionId });
  await doneOf(a, second.runId);
  const unpriced = await chat(a, { botId, content: 'and on the plain demo model?', sessionId: first.sessionId });
  await doneOf(a, unpriced.runId);

  const usages = [first, second, unpriced].map(({ runId }) => payloadsOf(ofRun(a, runId), 'usage')[0]);
  for (const usage of usages.slice(0, 2)) {
    expect(usage.promptTokens).toBeGreaterThan(0);
    expect(usage.totalTokens).toBe(usage.promptTokens + usage.completionTokens);
    expect(usage.totalCost).toBeCloseTo((usage.promptTokens / 1000) * PRICE.prompt + (usage.completionTokens / 1000) * PRICE.completion, 9);
  }
  expect(usages[2].totalCost).toBe(0);

  const fresh = await dashboard(1, 'ben', botId);
  const ack = await fresh.command<{ snapshot: BotState }>('subscribe', { stream: `bot:${botId}` });
  if (!ack.ok) throw new Error(JSON.stringify(ack));
  const session = ack.result.snapshot.sessions.find((s) => s.sessionId === first.sessionId);
  const sum = (pick: (u: (typeof usages)[number]) => number) => usages.reduce((total, u) => total + pick(u), 0);
  expect(session?.usage).toEqual({
    promptTokens: sum((u) => u.promptTokens),
    completionTokens: sum((u) => u.completionTokens),
    totalTokens: sum((u) => u.totalTokens),
    totalCost: expect.closeTo(
      sum((u) => u.totalCost),
      9,
    ),
  });
  expect(ack.result.snapshot.recentRuns.map((r) => r.usage?.totalCost)).toEqual(usages.map((u) => u.totalCost));
});

it('a worker killed mid-run: the other one ends the run (no run stays running), one done, no chunk twice, gapless', async () => {
  const botId = 'fleet-kill';
  const [a, b] = await Promise.all([subscribed(0, 'ann', botId), subscribed(1, 'ben', botId)]);
  const { runId } = await chat(a, { botId, content: '/slow 100' });
  await waitFor(() => assistantDeltas(ofRun(a, runId)).length >= 3, { message: 'the reply streaming' });

  const runner = await workerRunning(runId);
  await runner.kill();
  const done = await doneOf(a, runId, 30_000);
  await doneOf(b, runId);

  // What this product does: a run cut off mid-stream is not resumed (it would repeat what
  // dashboards saw); the worker that takes the stalled job over ends it failed, saying so.
  expect(done.status).toBe('failed');
  const run = ofRun(a, runId);
  expect(payloadsOf(run, 'done')).toHaveLength(1);
  expect(run.at(-1)?.type).toBe('done');
  expect(payloadsOf(run, 'error')).toEqual([expect.objectContaining({ code: 'RUN_FAILED', message: expect.stringMatching(/stopped; it was not resumed/) })]);
  expect(await cancelRefused(a, runId)).toMatchObject({ ok: false, error: { code: 'CONFLICT', message: expect.stringMatching(/failed/) } });

  const deltas = assistantDeltas(run);
  const pairs = deltas.map((d) => `${d.messageId}\u0000${d.content}`);
  expect(new Set(pairs).size).toBe(pairs.length);
  expect(new Set(deltas.map((d) => d.messageId)).size).toBe(1);
  // The text that reached dashboards is a clean prefix of the reply: chunk 1, 2, … k, none twice.
  const text = assistantText(run);
  const chunks = text.split(/(?<=\/100 )/).filter(Boolean);
  expect(chunks.length).toBeGreaterThanOrEqual(3);
  expect(chunks).toEqual(range(1, chunks.length).map((i) => `chunk ${i}/100 `));
  expect(seqsOf(a.events, `bot:${botId}`)).toEqual(range(1, a.events.length));
  expect(b.events).toEqual(a.events);

  // The surviving worker still runs the bot.
  const after = await chat(a, { botId, content: 'still there?' });
  expect(await doneOf(a, after.runId)).toMatchObject({ status: 'completed' });
});

it('a run whose job stalls a second time (BullMQ then fails it unprocessed) still ends: failed, one done', async () => {
  // Two workers again: the one left by the test above and a new one.
  extraWorkers.push(await startWorker({ redisUrl: system.redis.url, env: WORKER_ENV }));
  const botId = 'fleet-kill-twice';
  const a = await subscribed(0, 'ann', botId);
  const { runId } = await chat(a, { botId, content: '/slow 100' });
  await waitFor(() => assistantDeltas(ofRun(a, runId)).length >= 2, { message: 'the reply streaming' });
  // As if a worker had died under this job once already (BullMQ's stalled counter: it fails a
  // job found stalled more than once, by default, without handing it to a processor).
  await withRunsQueue((runs) => system.client.hset(runs.toKey(runId), 'stc', '1'));
  await (await workerRunning(runId)).kill();

  expect(await doneOf(a, runId, 30_000)).toMatchObject({ status: 'failed' });
  const run = ofRun(a, runId);
  expect(payloadsOf(run, 'done')).toHaveLength(1);
  expect(payloadsOf(run, 'error')).toEqual([
    expect.objectContaining({ code: 'RUN_FAILED', message: expect.stringMatching(/stalled more than allowable limit/) }),
  ]);
  expect(await cancelRefused(a, runId)).toMatchObject({ ok: false, error: { code: 'CONFLICT' } });
  expect(seqsOf(a.events, `bot:${botId}`)).toEqual(range(1, a.events.length));
});

async function withRunsQueue<T>(use: (runs: Queue) => Promise<T>): Promise<T> {
  const runs = new Queue(QUEUES.agentRuns, { connection: system.client as unknown as ConnectionOptions, prefix: QUEUE_PREFIX });
  try {
    return await use(runs);
  } finally {
    await runs.close();
  }
}

/** The worker whose BullMQ worker holds the run's job (`processedBy` is its WORKER_ID, host name + pid by default). */
async function workerRunning(runId: string): Promise<AppProcess> {
  const by = await withRunsQueue((runs) => waitFor(async () => (await Job.fromId(runs, runId))?.processedBy, { message: `the worker of ${runId}` }));
  const worker = [...system.workers, ...extraWorkers].find((w) => w.running && w.pid !== undefined && by.endsWith(`-${w.pid}`));
  if (!worker) throw new Error(`no running test worker is ${by}`);
  return worker;
}
