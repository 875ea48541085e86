import type { BotEvent, Envelope } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { type Answer, chunk, FakeOpenAiServer, silence, status, stream, textTurn } from '../apps/worker/src/agents/providers/testing/fake-openai-server';
import { connectSocket, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * A bot on the OpenAI-compatible provider end to end: the worker process is configured by
 * environment (AGENT_PROVIDER=openai, OPENAI_*) and talks real HTTP to a local server that
 * streams chat completions as OpenAI does (there is no outside network here). One run: the
 * model asks for the calculator, the runtime runs it and sends the result back, the model
 * streams its answer; the dashboard sees the contract's events, and the server sees the
 * conversation, the tools and the key.
 */
let system: TestSystem;
let model: FakeOpenAiServer;
let socket: TestSocket;
beforeAll(async () => {
  model = await FakeOpenAiServer.start();
  system = await startSystem({
    gateways: 1,
    workers: 1,
    workerEnv: {
      AGENT_PROVIDER: 'openai',
      AGENT_MODEL: 'fake-model',
      OPENAI_BASE_URL: model.baseUrl,
      OPENAI_API_KEY: 'sk-test',
      OPENAI_MODEL: 'fake-model',
      // Short, so the faults below end within seconds: a silent server fails the turn after 1.5 s, a busy one is tried twice.
      OPENAI_TIMEOUT_MS: '1500',
      OPENAI_MAX_RETRIES: '1',
      OPENAI_RETRY_BACKOFF_MS: '50',
    },
  });
  socket = await connectSocket(system.gateways[0].url, await signToken({ sub: 'ann', scope: ['bot:llm'] }));
  expect(await socket.command('subscribe', { stream: 'bot:llm' })).toMatchObject({ ok: true });
});
afterAll(async () => {
  socket?.close();
  await system?.stop();
  await model?.close();
});

type Payload<T extends BotEvent['type']> = Extract<BotEvent, { type: T }>['payload'];
const payloadsOf = <T extends BotEvent['type']>(events: Envelope[], type: T) => events.filter((e) => e.type === type).map((e) => e.payload as Payload<T>);

async function runTo(content: string): Promise<{ runId: string; events: () => Envelope[] }> {
  const ack = await socket.command<{ runId: string }>('chat', { botId: 'llm', content });
  if (!ack.ok) throw new Error(JSON.stringify(ack));
  const { runId } = ack.result;
  const events = () => socket.events.filter((e) => (e.payload as { runId?: string }).runId === runId);
  await waitFor(() => events().some((e) => e.type === 'done'), { message: `done of ${runId}`, timeoutMs: 20_000 });
  return { runId, events };
}

it('streams a tool-calling turn and the final reply from an OpenAI-compatible server', async () => {
  model.answer(
    stream([
      chunk.role(),
      chunk.toolCallStart(0, 'call_1', 'calculator'),
      chunk.toolCallArguments(0, '{"expression":'),
      chunk.toolCallArguments(0, '"6*7"}'),
      chunk.finish('tool_calls'),
      chunk.usage(20, 8),
    ]),
    stream(textTurn(['The answer ', 'is ', '42.'], [30, 5])),
  );
  const ack = await socket.command<{ runId: string }>('chat', { botId: 'llm', content: 'what is 6*7?' });
  if (!ack.ok) throw new Error(JSON.stringify(ack));
  const { runId } = ack.result;
  const run = () => socket.events.filter((e) => (e.payload as { runId?: string }).runId === runId);
  await waitFor(() => run().some((e) => e.type === 'done'), { message: 'done', timeoutMs: 20_000 });

  const types = run()
    .map((e) => e.type)
    .filter((t, i, all) => !(t === 'message' && all[i - 1] === 'message'));
  expect(types).toEqual(['run_started', 'message', 'tool_start', 'tool_end', 'message', 'usage', 'done']);
  expect(payloadsOf(run(), 'tool_end')[0]).toMatchObject({ toolCallId: 'call_1', result: '42', success: true });
  const reply = payloadsOf(run(), 'message').filter((m) => m.role === 'assistant');
  expect(reply.map((m) => m.content).join('')).toBe('The answer is 42.');
  expect(payloadsOf(run(), 'usage')[0]).toMatchObject({ promptTokens: 50, completionTokens: 13, totalTokens: 63 });
  expect(payloadsOf(run(), 'done')[0].status).toBe('completed');

  expect(model.requests).toHaveLength(2);
  expect(model.requests[0].headers.authorization).toBe('Bearer sk-test');
  expect(model.requests[0].body).toMatchObject({ model: 'fake-model', stream: true });
  expect((model.requests[0].body.tools as Array<{ function: { name: string } }>).map((t) => t.function.name)).toContain('calculator');
  // The second turn carries the tool call and its result back to the model.
  const second = model.requests[1].body.messages as Array<{ role: string; content?: string; tool_call_id?: string }>;
  expect(second.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'call_1', content: '42' });
});

describe('a model server that fails: the run ends failed with one error saying why, and one done', () => {
  it.each<[string, Answer, string, RegExp, number]>([
    [
      'errors (500, also on the retry)',
      status(500, { error: { message: 'the GPUs are on fire' } }),
      'MODEL_UNAVAILABLE',
      /500.*the GPUs are on fire.*after 2 attempts/,
      2,
    ],
    ['refuses the request (400)', status(400, { error: { message: 'context too long' } }), 'MODEL_REJECTED', /400.*context too long/, 1],
    ['hangs (never answers)', silence, 'MODEL_TIMEOUT', /did not answer: nothing for 1500 ms/, 1],
    ['returns garbage', stream(['<html>not json</html>']), 'MODEL_BAD_RESPONSE', /not JSON/, 1],
  ])('%s', async (_what, answer, code, message, attempts) => {
    model.requests.length = 0;
    model.answer(answer);
    const { runId, events } = await runTo('hello?');
    expect(events().map((e) => e.type)).toEqual(['run_started', 'message', 'usage', 'error', 'done']);
    expect(payloadsOf(events(), 'error')).toEqual([{ sessionId: expect.any(String), runId, code, message: expect.stringMatching(message) }]);
    expect(payloadsOf(events(), 'done')).toEqual([expect.objectContaining({ runId, status: 'failed' })]);
    expect(model.requests).toHaveLength(attempts);
  });

  it('stalls mid-stream: the text streamed so far stays, then the error and done', async () => {
    model.answer(stream([chunk.role(), chunk.text('Half an ')], { then: 'stall' }));
    const { runId, events } = await runTo('tell me');
    expect(events().map((e) => e.type)).toEqual(['run_started', 'message', 'message', 'usage', 'error', 'done']);
    expect(payloadsOf(events(), 'message')[1]).toMatchObject({ role: 'assistant', content: 'Half an ' });
    expect(payloadsOf(events(), 'error')).toEqual([
      expect.objectContaining({ runId, code: 'MODEL_TIMEOUT', message: expect.stringMatching(/stalled mid-stream/) }),
    ]);
    expect(payloadsOf(events(), 'done')).toEqual([expect.objectContaining({ status: 'failed' })]);
  });
});
