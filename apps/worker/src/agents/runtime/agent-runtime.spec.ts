import { type AgentRunJob, DEFAULT_RETENTION, DomainStore, Producer, ProducerFencedError, producerIds, StreamHistory, StreamPublisher } from '@app/backplane';
import { type BotEvent, botStream } from '@app/protocol';
import { acquireRedis, type AcquiredRedis, createRedis, type RedisClient, waitFor } from '@app/runtime';
import { DeltaCoalescer } from '../../ops/delta-coalescer';
import { HandedBack } from '../../ops/hand-back';
import { BotCatalog, type BotDefinition } from '../bots/bot-definition';
import { DemoProvider } from '../providers/demo-provider';
import { ProviderRegistry } from '../providers/provider-registry';
import { builtInTools } from '../tools/tool-registry';
import { AgentRuntime, type Publish, type RunOutcome } from './agent-runtime';
import type { RunState } from './run-state';

/**
 * The runtime's event order and its parking, on a real private Redis (decisions, run state
 * and session history live there) with a recording sink in place of the stream publisher.
 */
let server: AcquiredRedis;
let redis: RedisClient;
let store: DomainStore;
let runtime: AgentRuntime;
beforeAll(async () => {
  server = await acquireRedis({ ownServer: true, persistent: false });
  redis = createRedis({ url: server.url, role: 'test' });
  store = new DomainStore(redis);
  runtime = new AgentRuntime({
    bots: new BotCatalog(bot),
    providers: new ProviderRegistry().register(new DemoProvider({ chunkDelayMs: 0, slowChunkMs: 20 })),
    tools: builtInTools({ allowedHosts: [], timeoutMs: 1000 }),
    store,
    publish,
    options: { approvalTimeoutMs: 60_000, approvalOnExpiry: 'reject', planTimeoutMs: 60_000 },
    now: () => clock,
  });
});
afterAll(async () => {
  await redis.quit();
  await server.release();
});

const bot: BotDefinition = {
  botId: '*',
  provider: 'demo',
  model: 'demo',
  systemPrompt: 'You are a test.',
  tools: ['calculator', 'clock', 'http_get', 'delete_file'],
  approvalThreshold: 'high',
  onBusy: 'enqueue',
  maxTurns: 8,
};

let clock = 1_000_000;
let events: BotEvent[] = [];
const published = new Set<string>();
/** Idempotency keys behave as the stream's: a second publish under one key is not another event. */
const publish: Publish = (_botId, event, options) => {
  if (options?.idempotencyKey) {
    if (published.has(options.idempotencyKey)) return Promise.resolve();
    published.add(options.idempotencyKey);
  }
  events.push(event);
  return Promise.resolve();
};

let counter = 0;
async function newJob(content: string): Promise<AgentRunJob> {
  const n = ++counter;
  const job: AgentRunJob = { runId: `run-${n}`, botId: 'b1', sessionId: `s-${n}`, userId: 'u1', content, messageId: `m-${n}`, source: 'chat' };
  await store.createRun(job.runId, { botId: job.botId, sessionId: job.sessionId, userId: job.userId });
  events = [];
  return job;
}
const live = () => ({ cancel: new AbortController().signal });
const types = () => events.map((e) => e.type);
const payloads = <T extends BotEvent['type']>(type: T) =>
  events.filter((e) => e.type === type).map((e) => e.payload as Extract<BotEvent, { type: T }>['payload']);
const replyText = () =>
  payloads('message')
    .filter((m) => m.role === 'assistant')
    .map((m) => m.content)
    .join('');

async function resume(job: AgentRunJob): Promise<RunOutcome> {
  const state = await store.loadRunState<RunState>(job.runId);
  if (!state) throw new Error(`run ${job.runId} has no saved state`);
  return runtime.resume(job, state, live());
}

it('a plain chat: run_started, the user message, thinking, ≥3 deltas of one messageId, usage, one done', async () => {
  const job = await newJob('hello there');
  expect(await runtime.start(job, live())).toEqual({ kind: 'finished', status: 'completed' });
  const deltas = payloads('message').filter((m) => m.role === 'assistant');
  expect(types()).toEqual(['run_started', 'message', 'thinking', ...deltas.map(() => 'message'), 'usage', 'done']);
  expect(deltas.length).toBeGreaterThanOrEqual(3);
  expect(new Set(deltas.map((d) => d.messageId)).size).toBe(1);
  expect(deltas.every((d) => d.delta && d.replyToId === job.messageId)).toBe(true);
  expect(replyText()).toBe('Echo: hello there');
  expect(payloads('usage')[0]).toMatchObject({ promptTokens: 6, completionTokens: 3, totalTokens: 9, totalCost: 0 });
  expect(payloads('done')).toEqual([{ sessionId: job.sessionId, runId: job.runId, replyToId: job.messageId, status: 'completed' }]);
  expect((await store.sessionMessages(job.sessionId)).map((m) => [m.role, m.content])).toEqual([
    ['user', 'hello there'],
    ['assistant', 'Echo: hello there'],
  ]);
});

it('through a coalescer: the streamed reply leaves in fewer deltas, in order, concatenating exactly, and done keeps its idempotency key', async () => {
  const coalescing = new AgentRuntime({
    bots: new BotCatalog(bot),
    providers: new ProviderRegistry().register(new DemoProvider({ chunkDelayMs: 0, slowChunkMs: 20 })),
    tools: builtInTools({ allowedHosts: [], timeoutMs: 1000 }),
    store,
    publish,
    coalescer: (send) => new DeltaCoalescer(send, { windowMs: 10_000 }),
    options: { approvalTimeoutMs: 60_000, approvalOnExpiry: 'reject', planTimeoutMs: 60_000 },
    now: () => clock,
  });
  const job = await newJob('hello there, coalesced');
  expect(await coalescing.start(job, live())).toEqual({ kind: 'finished', status: 'completed' });
  // A window longer than the run: everything streamed before usage goes as one delta, before it.
  expect(types()).toEqual(['run_started', 'message', 'thinking', 'message', 'usage', 'done']);
  expect(replyText()).toBe('Echo: hello there, coalesced');
  expect(published.has(`run-done.${job.runId}`)).toBe(true);
});

it('a run publishes as its job attempt: a stalled processing still streaming is fenced off once the next one took the run on', async () => {
  // Real stream publishing: the runtime's producer stamps meet the publish script's fence.
  const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
  const history = new StreamHistory(redis, DEFAULT_RETENTION);
  const realPublish: Publish = (botId, event, options) => publisher.publish(botStream(botId), event, options);
  const deps = {
    bots: new BotCatalog(bot),
    tools: builtInTools({ allowedHosts: [], timeoutMs: 1000 }),
    store,
    publish: realPublish,
    fence: (botId: string, producerId: string, epoch: number) => publisher.fence(botStream(botId), producerId, epoch),
    options: { approvalTimeoutMs: 60_000, approvalOnExpiry: 'reject' as const, planTimeoutMs: 60_000 },
  };
  const zombie = new AgentRuntime({ ...deps, providers: new ProviderRegistry().register(new DemoProvider({ chunkDelayMs: 0, slowChunkMs: 30 })) });
  const successor = new AgentRuntime({ ...deps, providers: new ProviderRegistry().register(new DemoProvider({ chunkDelayMs: 0 })) });
  const job = { ...(await newJob('/slow 40')), botId: `fence-${counter}` };
  const stream = botStream(job.botId);
  const streamed = async () => history.range(stream, 1, 1_000);

  const first = zombie.start(job, { ...live(), producer: new Producer(producerIds.run(job.runId), 1) });
  await waitFor(async () => (await streamed()).filter((e) => e.type === 'message').length >= 3, { message: 'the first processing streaming' });
  // BullMQ gave the stalled job to another worker, and the run was cancelled meanwhile: the
  // successor publishes only the run's `done` (under its own key), having claimed its epoch.
  await successor.end(job, 'cancelled', null, undefined, new Producer(producerIds.run(job.runId), 2));
  await expect(first).rejects.toBeInstanceOf(ProducerFencedError);
  // An older processing cannot claim the run back either.
  await expect(zombie.end(job, 'failed', null, 'late', new Producer(producerIds.run(job.runId), 1))).rejects.toBeInstanceOf(ProducerFencedError);

  const events = await streamed();
  const done = events.findIndex((e) => e.type === 'done');
  expect(events.filter((e) => e.type === 'done')).toHaveLength(1);
  expect(events[done].payload).toMatchObject({ status: 'cancelled' });
  // Nothing of the fenced processing after the run's end.
  expect(events.slice(done + 1)).toEqual([]);
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
});

it('a processing that fails half-way is ended under its own producer: its error and done reach the stream after what it streamed', async () => {
  const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
  const history = new StreamHistory(redis, DEFAULT_RETENTION);
  // A provider that streams, then fails the way a bug would (not a ModelProviderError).
  const breaking = {
    name: 'demo',
    async *turn() {
      yield { kind: 'text' as const, text: 'half a reply' };
      throw new Error('a bug in the middle of a turn');
    },
  };
  const failing = new AgentRuntime({
    bots: new BotCatalog(bot),
    providers: new ProviderRegistry().register(breaking),
    tools: builtInTools({ allowedHosts: [], timeoutMs: 1000 }),
    store,
    publish: (botId, event, options) => publisher.publish(botStream(botId), event, options),
    fence: (botId, producerId, epoch) => publisher.fence(botStream(botId), producerId, epoch),
    options: { approvalTimeoutMs: 60_000, approvalOnExpiry: 'reject', planTimeoutMs: 60_000 },
  });
  const job = { ...(await newJob('hello')), botId: `broken-${counter}` };
  // As the run processor does: one producer for the processing, the failed run ended under it.
  const producer = new Producer(producerIds.run(job.runId), 1);
  await expect(failing.start(job, { ...live(), producer })).rejects.toThrow('a bug in the middle of a turn');
  await failing.end(job, 'failed', null, 'the run failed', producer);
  const events = await history.range(botStream(job.botId), 1, 100);
  expect(events.map((e) => e.type)).toEqual(['run_started', 'message', 'message', 'error', 'done']);
  expect(events.at(-2)?.payload).toMatchObject({ code: 'RUN_FAILED', message: 'the run failed' });
});

it('/tool calculator: tool_start, tool_end "4", then a reply with the result', async () => {
  const job = await newJob('/tool calculator {"expression":"2+2"}');
  expect(await runtime.start(job, live())).toEqual({ kind: 'finished', status: 'completed' });
  expect(types().filter((t) => t !== 'message')).toEqual(['run_started', 'thinking', 'tool_start', 'tool_end', 'usage', 'done']);
  expect(payloads('tool_start')[0]).toMatchObject({ toolCallId: 'demo-call-1', tool: 'calculator', args: { expression: '2+2' } });
  expect(payloads('tool_end')[0]).toMatchObject({ toolCallId: 'demo-call-1', result: '4', success: true });
  expect(replyText()).toBe('The calculator tool returned: 4');
});

it('prices a model listed in the price table from its tokens, adding every turn up in the run total', async () => {
  const priced = new AgentRuntime({
    bots: new BotCatalog(bot),
    providers: new ProviderRegistry().register(new DemoProvider({ chunkDelayMs: 0 })),
    tools: builtInTools({ allowedHosts: [], timeoutMs: 1000 }),
    store,
    publish,
    options: { approvalTimeoutMs: 60_000, approvalOnExpiry: 'reject', planTimeoutMs: 60_000, prices: { demo: { prompt: 0.1, completion: 0.3 } } },
    now: () => clock,
  });
  const job = await newJob('/tool calculator {"expression":"2+2"}');
  await priced.start(job, live());
  // Two turns: the tool call, then the reply; the demo model counts words as tokens.
  const [usage] = payloads('usage');
  expect(usage.totalCost).toBeCloseTo((usage.promptTokens / 1000) * 0.1 + (usage.completionTokens / 1000) * 0.3, 9);
  expect(usage.totalCost).toBeGreaterThan(0);
  expect(String(usage.totalCost).length).toBeLessThan(14);
});

it('an unknown tool and malformed arguments fail the call; the run goes on', async () => {
  const unknown = await newJob('/tool teleport {}');
  await runtime.start(unknown, live());
  expect(payloads('tool_end')[0]).toMatchObject({ success: false, result: { error: 'unknown tool teleport' } });
  expect(payloads('done')).toEqual([expect.objectContaining({ status: 'completed' })]);

  const malformed = await newJob('/tool calculator {"expression":');
  await runtime.start(malformed, live());
  expect(payloads('tool_end')[0]).toMatchObject({ success: false, result: { error: 'the arguments are not a JSON object' } });
  expect(payloads('done')).toEqual([expect.objectContaining({ status: 'completed' })]);
});

describe('approvals', () => {
  async function parkedOnDeleteFile(): Promise<{ job: AgentRunJob; approvalId: string }> {
    const job = await newJob('/tool delete_file {"path":"/tmp/x"}');
    const outcome = await runtime.start(job, live());
    expect(outcome).toMatchObject({ kind: 'parked', until: clock + 60_000 });
    expect(types()).toEqual(['run_started', 'message', 'thinking', 'tool_start', 'approval_needed']);
    const [needed] = payloads('approval_needed');
    expect(needed).toEqual({
      sessionId: job.sessionId,
      runId: job.runId,
      approvalId: `${job.runId}.approval-1`,
      tool: 'delete_file',
      args: { path: '/tmp/x' },
      riskLevel: 'high',
      expiresAt: clock + 60_000,
    });
    expect(await store.getRun(job.runId)).toMatchObject({ status: 'waiting' });
    expect(await store.getDecision('approval', needed.approvalId)).toMatchObject({ status: 'pending', runId: job.runId, expiresAt: clock + 60_000 });
    events = [];
    return { job, approvalId: needed.approvalId };
  }

  it('waits parked; approved, the tool runs and the run completes with one done', async () => {
    const { job, approvalId } = await parkedOnDeleteFile();
    // Looked at again before any answer: still parked, nothing announced twice.
    expect(await resume(job)).toMatchObject({ kind: 'parked' });
    expect(events).toEqual([]);

    expect(await store.decide(approvalId, { kind: 'approval', approved: true, resolvedBy: 'alice' }, 'job-a', clock)).toBe('resolved');
    expect(await resume(job)).toEqual({ kind: 'finished', status: 'completed' });
    expect(types().filter((t) => t !== 'message')).toEqual(['approval_resolved', 'tool_end', 'usage', 'done']);
    expect(payloads('approval_resolved')).toEqual([{ sessionId: job.sessionId, approvalId, approved: true, resolvedBy: 'alice' }]);
    expect(payloads('tool_end')[0]).toMatchObject({ success: true, result: { deleted: '/tmp/x', simulated: true } });
    expect(await store.decide(approvalId, { kind: 'approval', approved: false, resolvedBy: 'bob' }, 'job-b', clock)).toBe('conflict');
    expect(await store.loadRunState(job.runId)).toBeNull();
  });

  it('rejected: tool_end {success: false}, the run goes on and completes', async () => {
    const { job, approvalId } = await parkedOnDeleteFile();
    await store.decide(approvalId, { kind: 'approval', approved: false, resolvedBy: 'alice' }, 'job-c', clock);
    expect(await resume(job)).toEqual({ kind: 'finished', status: 'completed' });
    expect(payloads('tool_end')[0]).toMatchObject({ success: false, result: { error: 'the approval was rejected' } });
    expect(replyText()).toBe('The delete_file tool failed: the approval was rejected');
    expect(payloads('done')).toEqual([expect.objectContaining({ status: 'completed' })]);
  });

  it('expired: the default (reject) applies, announced as resolved by system; a late answer is refused', async () => {
    const { job, approvalId } = await parkedOnDeleteFile();
    clock += 60_000;
    expect(await store.decide(approvalId, { kind: 'approval', approved: true, resolvedBy: 'late' }, 'job-d', clock)).toBe('expired');
    expect(await resume(job)).toEqual({ kind: 'finished', status: 'completed' });
    expect(payloads('approval_resolved')).toEqual([{ sessionId: job.sessionId, approvalId, approved: false, resolvedBy: 'system' }]);
    expect(payloads('tool_end')[0]).toMatchObject({ success: false, result: { error: 'the approval expired' } });
    expect(await store.decide(approvalId, { kind: 'approval', approved: true, resolvedBy: 'late' }, 'job-e', clock)).toBe('conflict');
  });

  it('cancelled while parked: the tool call is closed, one done cancelled, the decision refuses answers', async () => {
    const { job, approvalId } = await parkedOnDeleteFile();
    const state = await store.loadRunState<RunState>(job.runId);
    expect(await runtime.end(job, 'cancelled', state)).toEqual({ kind: 'finished', status: 'cancelled' });
    expect(types()).toEqual(['tool_end', 'usage', 'done']);
    expect(payloads('done')[0].status).toBe('cancelled');
    expect(await store.decide(approvalId, { kind: 'approval', approved: true, resolvedBy: 'alice' }, 'job-f', clock)).toBe('conflict');
  });
});

describe('plans', () => {
  async function parkedOnPlan(): Promise<{ job: AgentRunJob; planId: string }> {
    const job = await newJob('/plan tidy the docs');
    expect(await runtime.start(job, live())).toMatchObject({ kind: 'parked' });
    const [created] = payloads('plan_created');
    expect(created.plan).toBe('Plan: tidy the docs\n\n1. Gather what is needed to tidy the docs\n2. Do it: tidy the docs\n3. Check the result and report');
    events = [];
    return { job, planId: created.planId };
  }
  const stepMessages = () => {
    const byId = new Map<string, string>();
    for (const m of payloads('message')) byId.set(m.messageId, (byId.get(m.messageId) ?? '') + m.content);
    return [...byId.entries()];
  };

  it('approved: each step streamed as its own message', async () => {
    const { job, planId } = await parkedOnPlan();
    await store.decide(planId, { kind: 'plan', response: 'approve', resolvedBy: 'alice' }, 'job-p1', clock);
    expect(await resume(job)).toEqual({ kind: 'finished', status: 'completed' });
    expect(payloads('plan_resolved')).toEqual([{ sessionId: job.sessionId, planId, response: 'approve', resolvedBy: 'alice' }]);
    expect(stepMessages()).toEqual([
      [`${job.runId}.step-1`, 'Step 1/3: Gather what is needed to tidy the docs — done.'],
      [`${job.runId}.step-2`, 'Step 2/3: Do it: tidy the docs — done.'],
      [`${job.runId}.step-3`, 'Step 3/3: Check the result and report — done.'],
    ]);
    expect(types().slice(-2)).toEqual(['usage', 'done']);
  });

  it('edited: the edited steps are worked through', async () => {
    const { job, planId } = await parkedOnPlan();
    await store.decide(planId, { kind: 'plan', response: 'edit', plan: '# mine\n1. alpha\n2. beta', resolvedBy: 'alice' }, 'job-p2', clock);
    await resume(job);
    expect(stepMessages()).toEqual([
      [`${job.runId}.step-1`, 'Step 1/2: alpha — done.'],
      [`${job.runId}.step-2`, 'Step 2/2: beta — done.'],
    ]);
  });

  it('rejected: a reply saying so, and the run completes', async () => {
    const { job, planId } = await parkedOnPlan();
    await store.decide(planId, { kind: 'plan', response: 'reject', feedback: 'not now', resolvedBy: 'alice' }, 'job-p3', clock);
    expect(await resume(job)).toEqual({ kind: 'finished', status: 'completed' });
    expect(stepMessages()).toEqual([[`${job.runId}.reply-plan`, 'The plan was rejected, so nothing was done. Feedback: not now']]);
    expect(payloads('done')).toEqual([expect.objectContaining({ status: 'completed' })]);
  });
});

it('/fail: error, then done failed', async () => {
  const job = await newJob('/fail');
  expect(await runtime.start(job, live())).toEqual({ kind: 'finished', status: 'failed' });
  expect(types().slice(-2)).toEqual(['error', 'done']);
  expect(payloads('error')[0]).toMatchObject({ code: 'MODEL_FAILED' });
  expect(payloads('done')[0].status).toBe('failed');
});

it('cancel mid-stream ends cancelled, keeping what was said; a hand-back publishes nothing more', async () => {
  const job = await newJob('/slow 100');
  const cancel = new AbortController();
  const run = runtime.start(job, { cancel: cancel.signal });
  await waitFor(() => payloads('message').filter((m) => m.role === 'assistant').length >= 2, { message: 'two chunks' });
  cancel.abort('cancelled');
  expect(await run).toEqual({ kind: 'finished', status: 'cancelled' });
  expect(types().slice(-2)).toEqual(['usage', 'done']);
  expect(payloads('done')[0].status).toBe('cancelled');
  expect((await store.sessionMessages(job.sessionId)).map((m) => m.role)).toEqual(['user', 'assistant']);

  const handed = await newJob('/slow 100');
  const handBack = new AbortController();
  const second = runtime.start(handed, { cancel: new AbortController().signal, handBack: handBack.signal });
  await waitFor(() => payloads('message').filter((m) => m.role === 'assistant').length >= 1, { message: 'a chunk' });
  handBack.abort('the worker is shutting down');
  await expect(second).rejects.toBeInstanceOf(HandedBack);
  expect(types()).not.toContain('done');
});
