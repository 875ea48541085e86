import { type ConnectionOptions, Job, Queue } from 'bullmq';
import { QUEUE_PREFIX, QUEUES } from '@app/backplane';
import type { Ack, BotEvent, Envelope } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { type AppProcess, startWorker } from './support/processes';
import { connectSocket, range, seqsOf, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * The agent runtime end to end (PROTOCOL.md §4, §9): two gateway pods, a worker running the
 * built-in `demo` model, dashboards as plain Socket.IO clients. Approvals and plans are
 * answered from a second dashboard on the other pod; a run parked on an approval survives
 * its worker being killed.
 */
let system: TestSystem;
const sockets: TestSocket[] = [];
const extraWorkers: AppProcess[] = [];
beforeAll(async () => {
  system = await startSystem({ gateways: 2, workers: 1 });
});
afterAll(async () => {
  sockets.forEach((s) => s.close());
  await Promise.all(extraWorkers.map((w) => w.kill()));
  await system?.stop();
});

type Payload<T extends BotEvent['type']> = Extract<BotEvent, { type: T }>['payload'];

async function dashboard(pod: number, sub: string, botId: string): Promise<TestSocket> {
  const socket = await connectSocket(system.gateways[pod].url, await signToken({ sub, scope: [`bot:${botId}`] }));
  sockets.push(socket);
  expect(await socket.command('subscribe', { stream: `bot:${botId}` })).toMatchObject({ ok: true });
  return socket;
}

function ofRun(socket: TestSocket, runId: string): Envelope[] {
  return socket.events.filter((e) => (e.payload as { runId?: string }).runId === runId);
}

function payloadsOf<T extends BotEvent['type']>(events: Envelope[], type: T): Array<Payload<T>> {
  return events.filter((e) => e.type === type).map((e) => e.payload as Payload<T>);
}

async function chat(socket: TestSocket, payload: Record<string, unknown>): Promise<{ runId: string; sessionId: string }> {
  const ack = await socket.command<{ runId: string; sessionId: string }>('chat', payload);
  if (!ack.ok) throw new Error(`chat refused: ${JSON.stringify(ack)}`);
  return ack.result;
}

async function doneOf(socket: TestSocket, runId: string, timeoutMs = 20_000): Promise<Payload<'done'>> {
  const envelope = await waitFor(() => ofRun(socket, runId).find((e) => e.type === 'done'), { message: `done of ${runId}`, timeoutMs });
  return envelope.payload as Payload<'done'>;
}

async function waitForEvent<T extends BotEvent['type']>(socket: TestSocket, runId: string, type: T): Promise<Payload<T>> {
  const envelope = await waitFor(() => ofRun(socket, runId).find((e) => e.type === type), { message: `${type} of ${runId}`, timeoutMs: 20_000 });
  return envelope.payload as Payload<T>;
}

const assistantText = (events: Envelope[]) =>
  payloadsOf(events, 'message')
    .filter((m) => m.role === 'assistant')
    .map((m) => m.content)
    .join('');

it('a plain chat: events in contract order, deltas sharing one messageId, usage, exactly one done — the same on both pods', async () => {
  const [a, b] = await Promise.all([dashboard(0, 'ann', 'agent-plain'), dashboard(1, 'ben', 'agent-plain')]);
  const { runId } = await chat(a, { botId: 'agent-plain', content: 'hello agent' });
  await Promise.all([doneOf(a, runId), doneOf(b, runId)]);
  expect(a.events).toEqual(b.events);
  expect(seqsOf(a.events, 'bot:agent-plain')).toEqual(range(1, a.events.length));

  const run = ofRun(a, runId);
  const deltas = payloadsOf(run, 'message').filter((m) => m.role === 'assistant');
  expect(run.map((e) => e.type)).toEqual(['run_started', 'message', 'thinking', ...deltas.map(() => 'message'), 'usage', 'done']);
  expect(payloadsOf(run, 'run_started')[0]).toMatchObject({ model: 'demo' });
  const userMessage = payloadsOf(run, 'message')[0];
  expect(userMessage).toMatchObject({ role: 'user', content: 'hello agent', delta: false });
  expect(deltas.length).toBeGreaterThanOrEqual(3);
  expect(new Set(deltas.map((d) => d.messageId)).size).toBe(1);
  expect(deltas.every((d) => d.delta && d.replyToId === userMessage.messageId)).toBe(true);
  expect(assistantText(run)).toBe('Echo: hello agent');
  expect(payloadsOf(run, 'done')).toEqual([expect.objectContaining({ status: 'completed', replyToId: userMessage.messageId })]);
});

it('/tool calculator: tool_start and tool_end "4", then a reply with the result', async () => {
  const a = await dashboard(0, 'ann', 'agent-calc');
  const { runId } = await chat(a, { botId: 'agent-calc', content: '/tool calculator {"expression":"2+2"}' });
  await doneOf(a, runId);
  const run = ofRun(a, runId);
  expect(run.map((e) => e.type).filter((t) => t !== 'message')).toEqual(['run_started', 'thinking', 'tool_start', 'tool_end', 'usage', 'done']);
  const [start] = payloadsOf(run, 'tool_start');
  expect(start).toMatchObject({ tool: 'calculator', args: { expression: '2+2' } });
  expect(payloadsOf(run, 'tool_end')).toEqual([expect.objectContaining({ toolCallId: start.toolCallId, result: '4', success: true })]);
  expect(assistantText(run)).toBe('The calculator tool returned: 4');
});

describe('approvals', () => {
  it('delete_file waits for an approval; a dashboard on the other pod approves; both see approval_resolved; a second answer is CONFLICT, an unknown id NOT_FOUND', async () => {
    const [a, b] = await Promise.all([dashboard(0, 'ann', 'agent-approve'), dashboard(1, 'ben', 'agent-approve')]);
    const { runId } = await chat(a, { botId: 'agent-approve', content: '/tool delete_file {"path":"/srv/important"}' });
    const needed = await waitForEvent(b, runId, 'approval_needed');
    expect(needed).toMatchObject({ tool: 'delete_file', args: { path: '/srv/important' }, riskLevel: 'high' });
    expect(needed.expiresAt).toBeGreaterThan(Date.now());

    expect(await b.command('approval', { approvalId: needed.approvalId, approved: true })).toEqual({ ok: true, result: {} });
    expect(await a.command('approval', { approvalId: needed.approvalId, approved: false })).toMatchObject({ ok: false, error: { code: 'CONFLICT' } });
    expect(await a.command('approval', { approvalId: 'no-such-approval', approved: true })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });

    await Promise.all([doneOf(a, runId), doneOf(b, runId)]);
    for (const s of [a, b]) {
      const resolved = s.events.filter((e) => e.type === 'approval_resolved');
      expect(resolved.map((e) => e.payload)).toEqual([expect.objectContaining({ approvalId: needed.approvalId, approved: true, resolvedBy: 'ben' })]);
    }
    const run = ofRun(a, runId);
    expect(run.map((e) => e.type).filter((t) => t !== 'message')).toEqual([
      'run_started',
      'thinking',
      'tool_start',
      'approval_needed',
      'tool_end',
      'usage',
      'done',
    ]);
    expect(payloadsOf(run, 'tool_end')[0]).toMatchObject({ success: true, result: { deleted: '/srv/important', simulated: true } });
    expect(payloadsOf(run, 'done')).toEqual([expect.objectContaining({ status: 'completed' })]);
    // approval_resolved carries no runId: it sits between approval_needed and tool_end on the stream.
    const order = a.events.map((e) => e.type);
    expect(order.indexOf('approval_resolved')).toBeGreaterThan(order.indexOf('approval_needed'));
    expect(order.indexOf('approval_resolved')).toBeLessThan(order.indexOf('tool_end'));
  });

  it('a rejected approval fails the tool call; the run goes on and completes', async () => {
    const a = await dashboard(0, 'ann', 'agent-reject');
    const { runId } = await chat(a, { botId: 'agent-reject', content: '/tool delete_file {"path":"/srv/x"}' });
    const needed = await waitForEvent(a, runId, 'approval_needed');
    expect(await a.command('approval', { approvalId: needed.approvalId, approved: false, note: 'no way' })).toMatchObject({ ok: true });
    expect(await doneOf(a, runId)).toMatchObject({ status: 'completed' });
    const run = ofRun(a, runId);
    expect(payloadsOf(run, 'tool_end')).toEqual([expect.objectContaining({ success: false, result: { error: 'the approval was rejected' } })]);
    expect(assistantText(run)).toBe('The delete_file tool failed: the approval was rejected');
    expect(payloadsOf(a.events, 'approval_resolved')).toEqual([expect.objectContaining({ approved: false, resolvedBy: 'ann' })]);
  });
});

describe('plans', () => {
  async function proposed(socket: TestSocket, botId: string): Promise<{ runId: string; planId: string; plan: string }> {
    const { runId } = await chat(socket, { botId, content: '/plan write the report' });
    const created = await waitForEvent(socket, runId, 'plan_created');
    return { runId, planId: created.planId, plan: created.plan };
  }
  const stepMessages = (events: Envelope[]) => {
    const byId = new Map<string, string>();
    for (const m of payloadsOf(events, 'message').filter((x) => x.role === 'assistant')) byId.set(m.messageId, (byId.get(m.messageId) ?? '') + m.content);
    return [...byId.values()];
  };

  it('approved from another pod: plan_resolved, then each step as its own message', async () => {
    const [a, b] = await Promise.all([dashboard(0, 'ann', 'agent-plan'), dashboard(1, 'ben', 'agent-plan')]);
    const { runId, planId, plan } = await proposed(a, 'agent-plan');
    expect(plan).toContain('1. ');
    expect(await b.command('plan_response', { planId, response: 'approve' })).toEqual({ ok: true, result: {} });
    expect(await a.command('plan_response', { planId, response: 'reject' })).toMatchObject({ ok: false, error: { code: 'CONFLICT' } });
    expect(await a.command('plan_response', { planId: 'no-such-plan', response: 'approve' })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await doneOf(a, runId)).toMatchObject({ status: 'completed' });
    expect(payloadsOf(a.events, 'plan_resolved')).toEqual([{ sessionId: expect.any(String), planId, response: 'approve', resolvedBy: 'ben' }]);
    expect(stepMessages(ofRun(a, runId))).toEqual([
      'Step 1/3: Gather what is needed to write the report — done.',
      'Step 2/3: Do it: write the report — done.',
      'Step 3/3: Check the result and report — done.',
    ]);
  });

  it('edited: the edited steps are worked through; rejected: a reply saying so, completed', async () => {
    const a = await dashboard(0, 'ann', 'agent-plan-2');
    const edited = await proposed(a, 'agent-plan-2');
    expect(await a.command('plan_response', { planId: edited.planId, response: 'edit', plan: '1. outline\n2. draft' })).toMatchObject({ ok: true });
    expect(await doneOf(a, edited.runId)).toMatchObject({ status: 'completed' });
    expect(stepMessages(ofRun(a, edited.runId))).toEqual(['Step 1/2: outline — done.', 'Step 2/2: draft — done.']);

    const rejected = await proposed(a, 'agent-plan-2');
    expect(await a.command('plan_response', { planId: rejected.planId, response: 'reject' })).toMatchObject({ ok: true });
    expect(await doneOf(a, rejected.runId)).toMatchObject({ status: 'completed' });
    expect(stepMessages(ofRun(a, rejected.runId))).toEqual(['The plan was rejected, so nothing was done.']);
  });
});

describe('busy sessions (chat.onBusy)', () => {
  it('enqueue: the second run starts after the first one is done', async () => {
    const a = await dashboard(0, 'ann', 'agent-queue');
    const first = await chat(a, { botId: 'agent-queue', content: '/slow 5' });
    const second = await chat(a, { botId: 'agent-queue', content: 'next please', sessionId: first.sessionId, onBusy: 'enqueue' });
    await doneOf(a, second.runId);
    const order = a.events.map((e) => `${e.type}:${(e.payload as { runId?: string }).runId ?? ''}`);
    expect(order.indexOf(`done:${first.runId}`)).toBeLessThan(order.indexOf(`run_started:${second.runId}`));
    expect(payloadsOf(a.events, 'done').map((d) => d.status)).toEqual(['completed', 'completed']);
  });

  it('reject acks CONFLICT while a run is in progress; interrupt cancels it and starts the new one', async () => {
    const a = await dashboard(0, 'ann', 'agent-busy');
    const first = await chat(a, { botId: 'agent-busy', content: '/slow 200' });
    await waitForEvent(a, first.runId, 'message');
    const refused = await a.command('chat', { botId: 'agent-busy', content: 'me too', sessionId: first.sessionId, onBusy: 'reject' });
    expect(refused).toMatchObject({ ok: false, error: { code: 'CONFLICT' } });

    const urgent = await chat(a, { botId: 'agent-busy', content: 'urgent', sessionId: first.sessionId, onBusy: 'interrupt' });
    expect(await doneOf(a, urgent.runId)).toMatchObject({ status: 'completed' });
    expect(await doneOf(a, first.runId)).toMatchObject({ status: 'cancelled' });
    const order = a.events.map((e) => `${e.type}:${(e.payload as { runId?: string }).runId ?? ''}`);
    expect(order.indexOf(`done:${first.runId}`)).toBeLessThan(order.indexOf(`run_started:${urgent.runId}`));
    expect(payloadsOf(a.events, 'done')).toHaveLength(2);
  });
});

it('a run parked on an approval holds no worker and survives a worker restart', async () => {
  const a = await dashboard(0, 'ann', 'agent-restart');
  const { runId } = await chat(a, { botId: 'agent-restart', content: '/tool delete_file {"path":"/srv/restart"}' });
  const needed = await waitForEvent(a, runId, 'approval_needed');
  // Parked: the run's job waits in BullMQ's delayed set, held by no worker. (A worker killed
  // between announcing the approval and parking leaves the job to BullMQ's stalled check.)
  const runs = new Queue(QUEUES.agentRuns, { connection: system.client as unknown as ConnectionOptions, prefix: QUEUE_PREFIX });
  try {
    await waitFor(async () => (await (await Job.fromId(runs, runId))?.getState()) === 'delayed', { message: 'the run parked' });
  } finally {
    await runs.close();
  }
  // The worker dies with no goodbye while the run waits; another one takes over.
  await system.workers[0].kill();
  const replacement = await startWorker({ redisUrl: system.redis.url });
  extraWorkers.push(replacement);

  const answer: Ack = await a.command('approval', { approvalId: needed.approvalId, approved: true });
  expect(answer).toEqual({ ok: true, result: {} });
  expect(await doneOf(a, runId, 30_000)).toMatchObject({ status: 'completed' });
  const run = ofRun(a, runId);
  expect(payloadsOf(run, 'tool_end')).toEqual([expect.objectContaining({ success: true })]);
  expect(payloadsOf(run, 'done')).toHaveLength(1);
  expect(payloadsOf(run, 'approval_needed')).toHaveLength(1);
  expect(seqsOf(a.events, 'bot:agent-restart')).toEqual(range(1, a.events.length));
});
