import { randomUUID } from 'node:crypto';
import { streamKeys } from '@app/backplane';
import { RealtimeClient } from '@app/client';
import type { DagDefinition, DagState } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { type JsonTestSocket, openJson, openPlain } from './support/plain-ws';
import { startSystem, type TestSystem } from './support/system';
import { signToken, TEST_API_KEY } from './support/tokens';

/**
 * The compatibility endpoints (PROTOCOL.md §13), driven as their original dashboards drive
 * them, against two gateway pods and a worker running the demo bot model and the DAG engine.
 * Each is checked against what the contract says happened: the same runs, the same
 * executions, seen through the old protocol's frames.
 */
let system: TestSystem;
let client: RealtimeClient;
const open: Array<{ close(): void }> = [];
beforeAll(async () => {
  system = await startSystem({ gateways: 2, workers: 1 });
  client = new RealtimeClient({ url: system.gateways[0].url, token: () => signToken({ sub: 'contract-watcher' }) });
}, 60_000);
afterAll(async () => {
  open.forEach((s) => s.close());
  client?.close();
  await system?.stop();
});

async function connect<F>(pod: number, path: string, query: Record<string, string>, token: Parameters<typeof signToken>[0] = {}): Promise<JsonTestSocket<F>> {
  const socket = await openJson<F>(system.gateways[pod].url, { token: await signToken(token), path, query });
  open.push(socket);
  return socket;
}

/** A compat socket without a token is closed 4401 at once and sent nothing. */
async function refusedWithoutToken(path: string, query: Record<string, string>): Promise<void> {
  const anonymous = await openJson<unknown>(system.gateways[0].url, { path, query });
  expect(await anonymous.closed).toEqual({ code: 4401, reason: 'UNAUTHORIZED' });
  expect(anonymous.frames).toEqual([]);
}

/** A message from an outside platform to a bot (PROTOCOL.md §7): published as platform_message, answered by a run. */
async function inbound(botId: string, content: string): Promise<{ sessionId: string; runId: string }> {
  const response = await fetch(`${system.gateways[1].url}/v1/bots/${botId}/inbound`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json', connection: 'close' },
    body: JSON.stringify({ platform: 'telegram', chatId: '991', content }),
  });
  expect(response.status).toBe(202);
  return (await response.json()) as { sessionId: string; runId: string };
}

/** Sends a frame and waits for the first frame after it that matches. */
async function answer<F>(socket: JsonTestSocket<F>, frame: unknown, match: (f: F) => boolean, what?: string): Promise<F> {
  const from = socket.frames.length;
  socket.send(frame);
  return socket.next(match, from, what);
}

describe('PocketPaw session socket (/compat/pocketpaw/ws)', () => {
  interface PpFrame {
    type: string;
    session_id?: string;
    run_id?: string;
    message_id?: string;
    content?: string;
    plan_id?: string;
    plan?: string;
    status?: string;
    code?: string;
    action?: string;
    usage?: Record<string, number>;
    messages?: Array<{ id: string; role: string; content: string }>;
  }
  const pocketpaw = (pod: number, query: Record<string, string>, token?: Parameters<typeof signToken>[0]) =>
    connect<PpFrame>(pod, '/compat/pocketpaw/ws', query, token);
  const chunksOf = (s: JsonTestSocket<PpFrame>, runId: string, after = 0) =>
    s.frames.slice(after).filter((f) => f.type === 'response_chunk' && f.run_id === runId);
  const textOf = (s: JsonTestSocket<PpFrame>, runId: string, after = 0) =>
    chunksOf(s, runId, after)
      .map((f) => f.content)
      .join('');
  const isError = (f: PpFrame) => f.type === 'error';

  it("streams a reply as response_chunk frames of one message, then stream_end, and shows nothing of it to another session's socket", async () => {
    const other = await pocketpaw(0, { bot: 'pp-chat' });
    // Its frames are handled in order after its subscribe: this error proves it is live.
    await answer(other, { action: 'nope' }, isError);
    const s = await pocketpaw(0, { bot: 'pp-chat' });
    s.send({ action: 'message', content: 'hello paw' });

    const end = await s.next((f) => f.type === 'stream_end', 0, 'stream_end');
    expect(end).toMatchObject({ status: 'completed', session_id: expect.any(String), run_id: expect.any(String) });
    expect(end.usage).toEqual({ input_tokens: expect.any(Number), output_tokens: expect.any(Number), total_tokens: expect.any(Number), cost_usd: 0 });
    const chunks = chunksOf(s, end.run_id as string);
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    expect(new Set(chunks.map((c) => c.message_id)).size).toBe(1);
    expect(textOf(s, end.run_id as string)).toBe('Echo: hello paw');
    expect(s.frames.map((f) => f.type)[0]).toBe('thinking');
    expect(s.frames.every((f) => f.session_id === end.session_id)).toBe(true);

    // The other socket (same pod: the run's events reached both in one pass) saw none of it.
    const error = await answer(other, { action: 'still-nope' }, isError);
    expect(other.frames).toEqual([expect.objectContaining({ code: 'UNKNOWN_COMMAND' }), error]);
  });

  it('proposes a plan, takes plan_response and streams each step as its own message', async () => {
    const s = await pocketpaw(1, { bot: 'pp-plan' });
    s.send({ action: 'message', content: '/plan launch the rocket' });
    const plan = await s.next((f) => f.type === 'plan_created', 0, 'plan_created');
    expect(plan.plan).toContain('launch the rocket');

    const from = s.frames.length;
    s.send({ action: 'plan_response', plan_id: plan.plan_id, response: 'approve' });
    const end = await s.next((f) => f.type === 'stream_end', from, 'stream_end');
    expect(end.status).toBe('completed');
    const steps = new Map<string, string>();
    for (const chunk of chunksOf(s, plan.run_id as string, from))
      steps.set(chunk.message_id as string, (steps.get(chunk.message_id as string) ?? '') + chunk.content);
    expect([...steps.values()]).toEqual([
      'Step 1/3: Gather what is needed to launch the rocket — done.',
      'Step 2/3: Do it: launch the rocket — done.',
      'Step 3/3: Check the result and report — done.',
    ]);

    // The same answer again is a retry of the same command (the plan's id makes it one): no
    // error; another answer to the plan is CONFLICT.
    const afterEnd = s.frames.length;
    s.send({ action: 'plan_response', plan_id: plan.plan_id, response: 'approve' });
    const conflict = await answer(s, { action: 'plan_response', plan_id: plan.plan_id, response: 'reject' }, isError);
    expect(conflict).toMatchObject({ code: 'CONFLICT', action: 'plan_response' });
    expect(s.frames.slice(afterEnd)).toEqual([conflict]);
  });

  it('resumes a session mid-reply: its history, the reply so far, then live chunks — nothing missed, nothing twice', async () => {
    const a = await pocketpaw(0, { bot: 'pp-resume' });
    a.send({ action: 'message', content: 'first' });
    const first = await a.next((f) => f.type === 'stream_end', 0, 'the first reply');
    const sessionId = first.session_id as string;
    const from = a.frames.length;
    a.send({ action: 'message', content: '/slow 20' });
    const firstChunk = await a.next((f) => f.type === 'response_chunk', from, 'the slow reply');
    const runId = firstChunk.run_id as string;
    await waitFor(() => chunksOf(a, runId, from).length >= 3, { message: 'three chunks streamed' });

    const b = await pocketpaw(1, { bot: 'pp-resume', resume_session: sessionId });
    const end = await b.next((f) => f.type === 'stream_end', 0, 'the slow reply ending');
    await a.next((f) => f.type === 'stream_end' && f.run_id === runId, from, 'the slow reply ending on a');
    expect(b.frames[0]).toMatchObject({ type: 'session_switched', session_id: sessionId });
    expect(b.frames[0].messages?.map((m) => [m.role, m.content])).toEqual([
      ['user', 'first'],
      ['assistant', 'Echo: first'],
      ['user', '/slow 20'],
    ]);
    // Resumed after three chunks: the first chunk b got carries the reply so far.
    expect(chunksOf(b, runId)[0].content?.startsWith('chunk 1/20 chunk 2/20 chunk 3/20 ')).toBe(true);
    const whole = Array.from({ length: 20 }, (_, i) => `chunk ${i + 1}/20 `).join('');
    expect(textOf(a, runId, from)).toBe(whole);
    expect(textOf(b, runId)).toBe(whole);
    expect(end).toMatchObject({ run_id: runId, session_id: sessionId, status: 'completed' });
  });

  it("puts a platform's message in every session socket's inbox, and shows its run only to that session", async () => {
    const s = await pocketpaw(0, { bot: 'pp-inbox' });
    await answer(s, { action: 'new_session' }, (f) => f.type === 'session_switched');
    const accepted = await inbound('pp-inbox', 'hello from telegram');
    expect(await s.next((f) => f.type === 'inbox_update')).toEqual({
      type: 'inbox_update',
      session_id: accepted.sessionId,
      platform: 'telegram',
      chat_id: '991',
      role: 'user',
      content: 'hello from telegram',
    });
    const elsewhere = await pocketpaw(1, { bot: 'pp-inbox', resume_session: accepted.sessionId });
    await elsewhere.next((f) => f.type === 'stream_end' && f.run_id === accepted.runId, 0, 'the run answering it');
    // s, in another session, got the inbox entry and nothing of the run (same pod check as above).
    await answer(s, { action: 'nope' }, isError);
    expect(s.frames.filter((f) => f.run_id === accepted.runId)).toEqual([]);
  });

  it('opens new sessions and switches between them', async () => {
    const s = await pocketpaw(0, { bot: 'pp-switch' });
    const one = await answer(s, { action: 'new_session', title: 'one' }, (f) => f.type === 'session_switched');
    expect(one.messages).toEqual([]);
    await answer(s, { action: 'message', content: 'in one' }, (f) => f.type === 'stream_end');
    const two = await answer(s, { action: 'new_session' }, (f) => f.type === 'session_switched');
    expect(two.session_id).not.toBe(one.session_id);
    const back = await answer(s, { action: 'switch_session', session_id: one.session_id }, (f) => f.type === 'session_switched');
    expect(back).toMatchObject({ session_id: one.session_id });
    expect(back.messages?.map((m) => m.content)).toEqual(['in one', 'Echo: in one']);
    // PocketPaw's own `chat` frame works too, in the session switched to.
    const end = await answer(s, { action: 'chat', message: 'again' }, (f) => f.type === 'stream_end');
    expect(end.session_id).toBe(one.session_id);
  });

  it('answers bad input with its error frame and carries on', async () => {
    const s = await pocketpaw(0, { bot: 'pp-bad' }, { scope: ['bot:pp-bad'] });
    expect(await answer(s, '{ not json', isError)).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await answer(s, { action: 'teleport' }, isError)).toMatchObject({ code: 'UNKNOWN_COMMAND', action: 'teleport' });
    expect(await answer(s, { action: 'message' }, isError)).toMatchObject({ code: 'VALIDATION_FAILED', action: 'message' });
    expect(await answer(s, { action: 'switch_session', session_id: 'no-such-session' }, isError)).toMatchObject({
      code: 'NOT_FOUND',
      action: 'switch_session',
    });
    const binary = s.frames.length;
    s.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await s.next(isError, binary)).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await answer(s, { action: 'message', content: 'still here' }, (f) => f.type === 'stream_end')).toMatchObject({ status: 'completed' });

    const outOfScope = await pocketpaw(1, { bot: 'pp-elsewhere' }, { scope: ['bot:pp-bad'] });
    expect(await outOfScope.next(isError)).toMatchObject({ code: 'FORBIDDEN', action: 'subscribe' });
    expect(await answer(outOfScope, { action: 'message', content: 'x' }, isError)).toMatchObject({ code: 'FORBIDDEN' });
    const noBot = await pocketpaw(1, {});
    expect(await noBot.next(isError)).toMatchObject({ code: 'VALIDATION_FAILED', content: expect.stringContaining('?bot=') });
    await refusedWithoutToken('/compat/pocketpaw/ws', { bot: 'pp-bad' });
    // A token that runs out: PocketPaw's error frame says so, then the close 4401.
    const expiring = await pocketpaw(0, { bot: 'pp-bad' }, { expiresInSeconds: 2 });
    expect(await expiring.next(isError, 0, 'the expiry notice')).toMatchObject({ code: 'UNAUTHORIZED', content: 'token expired' });
    expect((await expiring.closed).code).toBe(4401);
  });
});

describe('CachiBot socket (/compat/cachibot/ws)', () => {
  interface CbFrame {
    type: string;
    payload: Record<string, unknown> & { chatId?: string; runId?: string; role?: string; content?: string; messageId?: string; status?: string; code?: string };
  }
  const cachibot = (pod: number, query: Record<string, string>, token?: Parameters<typeof signToken>[0]) =>
    connect<CbFrame>(pod, '/compat/cachibot/ws', query, token);
  const isError = (f: CbFrame) => f.type === 'error';
  const doneOf = (s: JsonTestSocket<CbFrame>, after = 0) => s.next((f) => f.type === 'done', after, 'done');

  it('chats as CachiBot does: the user message, thinking, streamed message chunks, usage, done', async () => {
    const s = await cachibot(0, { bot: 'cb-chat' });
    s.send({ type: 'chat', payload: { message: 'hi cachi', capabilities: { codingAgent: true } } });
    const done = await doneOf(s);
    expect(done.payload).toMatchObject({ status: 'completed', chatId: expect.any(String), runId: expect.any(String), replyToId: expect.any(String) });
    const types = s.frames.map((f) => f.type);
    expect(types.slice(0, 2)).toEqual(['message', 'thinking']);
    expect(s.frames[0].payload).toMatchObject({ role: 'user', content: 'hi cachi', messageId: done.payload.replyToId });
    const assistant = s.frames.filter((f) => f.type === 'message' && f.payload.role === 'assistant');
    expect(assistant.length).toBeGreaterThanOrEqual(3);
    expect(new Set(assistant.map((f) => f.payload.messageId)).size).toBe(1);
    expect(assistant.map((f) => f.payload.content).join('')).toBe('Echo: hi cachi');
    expect(types.slice(-2)).toEqual(['usage', 'done']);
    expect(s.frames.at(-2)?.payload).toMatchObject({ totalTokens: expect.any(Number), promptTokens: expect.any(Number), totalCost: 0 });
  });

  it('cancels the run it started', async () => {
    const s = await cachibot(1, { bot: 'cb-cancel' });
    s.send({ type: 'chat', payload: { message: '/slow 40' } });
    await s.next((f) => f.type === 'message' && f.payload.role === 'assistant', 0, 'a first chunk');
    const from = s.frames.length;
    s.send({ type: 'cancel', payload: {} });
    expect((await doneOf(s, from)).payload.status).toBe('cancelled');
    // Nothing of this socket's is running any more.
    expect(await answer(s, { type: 'cancel' }, isError)).toMatchObject({ payload: { code: 'NOT_FOUND' } });
  });

  it('asks for an approval, shows it again to a reconnecting dashboard first, and runs the tool once approved', async () => {
    const s = await cachibot(0, { bot: 'cb-approve' });
    s.send({ type: 'chat', payload: { message: '/tool delete_file {"path":"/tmp/x"}' } });
    const asked = await s.next((f) => f.type === 'approval_needed', 0, 'approval_needed');
    expect(asked.payload).toMatchObject({
      id: expect.any(String),
      tool: 'delete_file',
      action: expect.stringContaining('delete_file'),
      details: { args: { path: '/tmp/x' }, riskLevel: 'high', expiresAt: expect.any(Number) },
    });
    s.close();

    const again = await cachibot(1, { bot: 'cb-approve' });
    expect(await again.next((f) => f.type === 'approval_needed')).toEqual(asked);
    expect(again.frames[0]).toEqual(asked);
    again.send({ type: 'approval', payload: { id: asked.payload.id, approved: true } });
    const toolEnd = await again.next((f) => f.type === 'tool_end', 0, 'tool_end');
    expect(toolEnd.payload).toMatchObject({ success: true });
    expect((await doneOf(again)).payload.status).toBe('completed');

    // The same answer again is a retry (the approval's id makes it one); another answer is CONFLICT.
    const from = again.frames.length;
    again.send({ type: 'approval', payload: { id: asked.payload.id, approved: true } });
    const conflict = await answer(again, { type: 'approval', payload: { id: asked.payload.id, approved: false } }, isError);
    expect(conflict.payload.code).toBe('CONFLICT');
    expect(again.frames.slice(from)).toEqual([conflict]);
  });

  it("keeps a chat the dashboard named itself: every frame carries its chatId, and the chat's messages share one session", async () => {
    const watcher = await openPlain(system.gateways[0].url, { token: await signToken() });
    open.push(watcher);
    await watcher.command('subscribe', { stream: 'bot:cb-named' });
    const s = await cachibot(0, { bot: 'cb-named' });
    const chatId = randomUUID();
    s.send({ type: 'chat', payload: { message: 'one', chatId, botId: 'cb-named' } });
    const first = await doneOf(s);
    const from = s.frames.length;
    s.send({ type: 'chat', payload: { message: 'two', chatId } });
    await doneOf(s, from);
    expect(s.frames.every((f) => f.payload.chatId === chatId)).toBe(true);

    await waitFor(() => watcher.events.filter((e) => e.type === 'done').length === 2, { message: 'the contract view of both runs' });
    const sessions = watcher.events.filter((e) => e.type === 'run_started').map((e) => (e.payload as { sessionId: string }).sessionId);
    expect(sessions).toHaveLength(2);
    expect(sessions[1]).toBe(sessions[0]);
    expect(first.payload.runId).toBe((watcher.events.find((e) => e.type === 'run_started')?.payload as { runId: string }).runId);
  });

  it('syncs a platform message and shows the run that answers it', async () => {
    const s = await cachibot(0, { bot: 'cb-platform' });
    await answer(s, { type: 'cancel' }, isError); // live from here on
    const accepted = await inbound('cb-platform', 'hi from telegram');
    const synced = await s.next((f) => f.type === 'platform_message', 0, 'platform_message');
    expect(synced.payload).toEqual({
      botId: 'cb-platform',
      chatId: '991',
      sessionId: accepted.sessionId,
      role: 'user',
      content: 'hi from telegram',
      messageId: expect.any(String),
      platform: 'telegram',
    });
    const done = await doneOf(s);
    expect(done.payload).toMatchObject({ chatId: accepted.sessionId, runId: accepted.runId, status: 'completed', replyToId: synced.payload.messageId });
  });

  it('answers bad input with its error frame and carries on', async () => {
    const s = await cachibot(0, { bot: 'cb-bad' }, { scope: ['bot:cb-bad'] });
    expect((await answer(s, 'garbage', isError)).payload.code).toBe('VALIDATION_FAILED');
    expect((await answer(s, { type: 'teleport', payload: {} }, isError)).payload.code).toBe('UNKNOWN_COMMAND');
    expect((await answer(s, { type: 'chat', payload: { message: 'x', botId: 'cb-other' } }, isError)).payload).toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringContaining('cb-bad'),
    });
    expect((await answer(s, { type: 'approval', payload: { id: 'no-such-approval', approved: true } }, isError)).payload.code).toBe('NOT_FOUND');
    expect((await answer(s, { type: 'chat', payload: { message: 'fine' } }, (f) => f.type === 'done')).payload.status).toBe('completed');

    const outOfScope = await cachibot(1, { bot: 'cb-elsewhere' }, { scope: ['bot:cb-bad'] });
    expect((await outOfScope.next(isError)).payload.code).toBe('FORBIDDEN');
    await refusedWithoutToken('/compat/cachibot/ws', { bot: 'cb-bad' });
  });
});

describe('DAG dashboard socket (/api/dags/:executionId/stream)', () => {
  interface DagFrame {
    type: string;
    node_id?: string;
    status?: string;
    output?: unknown;
    code?: string;
    spent?: number;
    budget?: number;
    remaining?: number;
    presentation?: unknown;
  }
  const dashboard = (pod: number, executionId: string, token?: Parameters<typeof signToken>[0]) =>
    connect<DagFrame>(pod, `/api/dags/${executionId}/stream`, {}, token);
  const nodeIs = (nodeId: string, status: string) => (f: DagFrame) => f.type === 'node_state' && f.node_id === nodeId && f.status === status;

  async function start(dag: DagDefinition, budgetUsd?: number): Promise<{ executionId: string; state: () => DagState }> {
    const { executionId } = await client.command('start_execution', { dag, ...(budgetUsd !== undefined ? { budgetUsd } : {}) });
    const store = await client.subscribe(`dag:${executionId}`);
    const state = () => store.state as DagState;
    await waitFor(() => state().nodes.length === dag.nodes.length, { message: 'the execution started' });
    return { executionId, state };
  }

  it('sends the state first, takes a human decision, and pauses and resumes the execution', async () => {
    const { executionId, state } = await start(
      {
        nodes: [
          { id: 'prep', config: { fn: 'echo', args: [1], costUsd: 0.25, durationMs: 10 } },
          { id: 'gate', kind: 'human_gate', config: { prompt: 'Ship it?', options: ['yes', 'no'] } },
          { id: 'build', kind: 'delay', config: { ms: 1_000 } },
          { id: 'ship', kind: 'delay', config: { ms: 10 } },
        ],
        edges: [
          { from: 'prep', to: 'gate' },
          { from: 'gate', to: 'build' },
          { from: 'build', to: 'ship' },
        ],
      },
      1,
    );
    const s = await dashboard(0, executionId);
    await s.next((f) => f.type === 'cost_update', 0, 'cost_update');
    expect(s.frames.slice(0, 5).map((f) => f.type)).toEqual(['node_state', 'node_state', 'node_state', 'node_state', 'cost_update']);
    expect(s.frames.slice(0, 4).map((f) => f.node_id)).toEqual(['prep', 'gate', 'build', 'ship']);

    const waiting = await s.next((f) => f.type === 'human_gate_waiting', 0, 'human_gate_waiting');
    expect(waiting).toEqual({ type: 'human_gate_waiting', node_id: 'gate', presentation: { prompt: 'Ship it?', options: ['yes', 'no'] } });
    expect(await s.next((f) => f.type === 'cost_update' && f.spent === 0.25)).toMatchObject({ budget: 1, remaining: 0.75 });
    await answer(s, { type: 'human_decision', node_id: 'gate', decision: 'approve', feedback: 'go' }, nodeIs('gate', 'completed'));
    await s.next(nodeIs('build', 'running'), 0, 'build running');

    const paused = await answer(s, { type: 'pause_execution' }, (f) => f.type === 'execution_state' && f.status === 'paused');
    const built = await s.next(nodeIs('build', 'completed'), 0, 'build completed');
    // Paused: the step that completed `build` handed nothing out.
    expect(s.frames.indexOf(built)).toBeGreaterThan(s.frames.indexOf(paused));
    await waitFor(() => state().nodes.find((n) => n.id === 'build')?.status === 'completed', { message: 'the contract view of build' });
    expect(state().status).toBe('paused');
    expect(state().nodes.find((n) => n.id === 'ship')?.status).toBe('pending');

    const resumed = await answer(s, { type: 'resume_execution' }, (f) => f.type === 'execution_state' && f.status === 'running');
    const complete = await s.next((f) => f.type === 'execution_complete', 0, 'execution_complete');
    expect(complete).toMatchObject({ status: 'completed', results: expect.objectContaining({ prep: [1] }) });
    expect(s.frames.findIndex(nodeIs('ship', 'ready'))).toBeGreaterThan(s.frames.indexOf(resumed));
    // The gate was decided once; a second decision is refused, naming the node.
    expect(await answer(s, { type: 'human_decision', node_id: 'gate', decision: 'reject' }, (f) => f.type === 'error')).toMatchObject({
      code: 'CONFLICT',
      node_id: 'gate',
    });
  });

  it('resyncs a reconnecting dashboard: the state frames first, then live events, nothing missed', async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `n${i + 1}`);
    const { executionId, state } = await start(
      {
        nodes: ids.map((id) => ({ id, config: { fn: 'echo', args: id, costUsd: 0.01, durationMs: 200 } })),
        edges: ids.slice(1).map((id, i) => ({ from: ids[i], to: id })),
      },
      5,
    );
    const a = await dashboard(0, executionId);
    await a.next(nodeIs('n2', 'completed'), 0, 'n2 completed');
    a.close();
    await a.closed;
    await waitFor(() => state().nodes.find((n) => n.id === 'n5')?.status === 'completed', { message: 'progress while the dashboard was away' });

    const b = await dashboard(1, executionId);
    const complete = await b.next((f) => f.type === 'execution_complete', 0, 'execution_complete');
    expect(complete.status).toBe('completed');
    const resync = b.frames.slice(0, ids.length + 1);
    expect(resync.map((f) => f.type)).toEqual([...ids.map(() => 'node_state'), 'cost_update']);
    expect(resync.map((f) => f.node_id).slice(0, ids.length)).toEqual(ids);
    expect(resync.slice(0, 5).map((f) => f.status)).toEqual(['completed', 'completed', 'completed', 'completed', 'completed']);

    // Folding what b got — state frames, then live — gives what the contract says happened.
    await waitFor(() => state().status === 'completed', { message: 'the contract view of the end' });
    const folded = new Map<string, { status?: string; output?: unknown }>();
    for (const f of b.frames) if (f.type === 'node_state') folded.set(f.node_id as string, { status: f.status, output: f.output });
    expect(Object.fromEntries(folded)).toEqual(Object.fromEntries(state().nodes.map((n) => [n.id, { status: n.status, output: n.output }])));
    expect(b.frames.filter((f) => f.type === 'cost_update').at(-1)).toMatchObject(state().cost ?? {});
  });

  it('answers bad input with its error frame and carries on', async () => {
    const { executionId } = await start({ nodes: [{ id: 'wait', kind: 'human_gate', config: { prompt: 'ok?' } }], edges: [] });
    const s = await dashboard(0, executionId, { scope: [`dag:${executionId}`] });
    await s.next((f) => f.type === 'human_gate_waiting');
    const isError = (f: DagFrame) => f.type === 'error';
    expect(await answer(s, 'nonsense', isError)).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await answer(s, { type: 'rewind' }, isError)).toMatchObject({ code: 'UNKNOWN_COMMAND' });
    expect(await answer(s, { type: 'human_decision', decision: 'approve' }, isError)).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await answer(s, { type: 'human_decision', node_id: 'ghost', decision: 'approve' }, isError)).toMatchObject({ code: 'NOT_FOUND', node_id: 'ghost' });
    expect(await answer(s, { type: 'human_decision', node_id: 'wait', decision: 'approve' }, (f) => f.type === 'execution_complete')).toMatchObject({
      status: 'completed',
    });

    const outOfScope = await dashboard(1, 'someone-elses', { scope: [`dag:${executionId}`] });
    expect(await outOfScope.next(isError)).toMatchObject({ code: 'FORBIDDEN' });
    const badId = await dashboard(1, 'bad%20id');
    expect(await badId.next(isError)).toMatchObject({ code: 'VALIDATION_FAILED' });
    await refusedWithoutToken(`/api/dags/${executionId}/stream`, {});
  });

  it('closes 1013 when the stream starts a new history (its epoch changed), and the reconnect resyncs', async () => {
    const executionId = `epoch-${randomUUID()}`;
    const stream = `dag:${executionId}` as const;
    const s = await dashboard(0, executionId);
    await s.next((f) => f.type === 'cost_update');
    const publisher = system.publisher();
    await publisher.publish(stream, { type: 'node_state', payload: { nodeId: 'a', status: 'running' } });
    await s.next(nodeIs('a', 'running'));
    // History lost (as a wiped Redis or a lossy failover leaves it): the next publish starts a new epoch.
    await system.client.del(streamKeys(stream).meta);
    await publisher.publish(stream, { type: 'node_state', payload: { nodeId: 'b', status: 'running' } });
    expect((await s.closed).code).toBe(1013);
    expect(s.frames.some(nodeIs('b', 'running'))).toBe(false);

    const again = await dashboard(1, executionId);
    expect(await again.next(nodeIs('b', 'running'))).toMatchObject({ type: 'node_state' });
  });
});
