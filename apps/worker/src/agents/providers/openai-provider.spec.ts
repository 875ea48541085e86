import { waitFor } from '@app/runtime';
import { type ModelStreamPart, ModelProviderError, type ModelTurnRequest } from './model-provider';
import type { OpenAiProviderConfig } from './openai-config';
import { OpenAiProvider } from './openai-provider';
import { chunk, FakeOpenAiServer, reset, silence, status, stream, textTurn } from './testing/fake-openai-server';

/** Real sockets against a local server that speaks the format (no mocked fetch). */
describe('OpenAiProvider', () => {
  let server: FakeOpenAiServer;
  beforeEach(async () => (server = await FakeOpenAiServer.start()));
  afterEach(() => server.close());

  const provider = (config: Partial<OpenAiProviderConfig> = {}) =>
    new OpenAiProvider({
      baseUrl: server.baseUrl,
      apiKey: 'sk-test-secret',
      model: 'fake-model',
      timeoutMs: 5_000,
      maxRetries: 2,
      retryBackoffMs: 10,
      pricePer1k: { prompt: 0, completion: 0 },
      ...config,
    });
  const request = (fields: Partial<ModelTurnRequest> = {}): ModelTurnRequest => ({
    model: '',
    messages: [{ role: 'user', content: 'Hello?' }],
    tools: [],
    signal: new AbortController().signal,
    ...fields,
  });

  describe('streaming', () => {
    it('streams text deltas and sends the model, the key and the conversation in the wire format', async () => {
      server.answer(stream(textTurn(['Hel', 'lo ', 'wörld'], [21, 3])));
      const parts = await collect(
        provider().turn(
          request({
            messages: [
              { role: 'system', content: 'Be brief.' },
              { role: 'user', content: 'Weather?' },
              { role: 'assistant', content: '', toolCalls: [{ id: 'call_1', name: 'weather', arguments: '{"city":"Oslo"}' }] },
              { role: 'tool', toolCallId: 'call_1', content: '-3 °C' },
              { role: 'user', content: 'And tomorrow?' },
            ],
            tools: [{ name: 'weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }],
          }),
        ),
      );

      expect(parts).toEqual([
        { kind: 'text', text: 'Hel' },
        { kind: 'text', text: 'lo ' },
        { kind: 'text', text: 'wörld' },
        { kind: 'usage', promptTokens: 21, completionTokens: 3, costUsd: 0 },
      ]);
      const [sent] = server.requests;
      expect(sent.path).toBe('/v1/chat/completions');
      expect(sent.headers).toMatchObject({ authorization: 'Bearer sk-test-secret', 'content-type': 'application/json', accept: 'text/event-stream' });
      expect(sent.body).toEqual({
        model: 'fake-model',
        stream: true,
        stream_options: { include_usage: true },
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Weather?' },
          { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] },
          { role: 'tool', tool_call_id: 'call_1', content: '-3 °C' },
          { role: 'user', content: 'And tomorrow?' },
        ],
        tools: [
          {
            type: 'function',
            function: { name: 'weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
          },
        ],
      });
    });

    it("asks for the request's model when it names one, sends no key when none is set and no empty tools list", async () => {
      server.answer(stream(textTurn(['ok'])));
      await collect(provider({ apiKey: undefined }).turn(request({ model: 'llama3.1:8b' })));
      const [sent] = server.requests;
      expect(sent.headers.authorization).toBeUndefined();
      expect(sent.body.model).toBe('llama3.1:8b');
      expect(sent.body).not.toHaveProperty('tools');
    });

    it('joins tool-call fragments cut across chunks and reads into whole calls, two in parallel', async () => {
      // Interleaved on purpose: OpenAI sends one call after the other, other servers need not.
      const chunks = [
        chunk.role(),
        chunk.text('Checking both.'),
        chunk.toolCallStart(0, 'call_weather', 'weather'),
        chunk.toolCallArguments(0, '{"ci'),
        chunk.toolCallStart(1, 'call_clock', 'clock'),
        chunk.toolCallArguments(0, 'ty": "Zür'),
        chunk.toolCallArguments(1, ''),
        chunk.toolCallArguments(0, 'ich"}'),
        chunk.finish('tool_calls'),
        chunk.usage(80, 25),
      ];
      server.answer(stream(chunks, { pieceBytes: 7 }));
      const parts = await collect(provider().turn(request()));
      expect(parts).toEqual([
        { kind: 'text', text: 'Checking both.' },
        { kind: 'tool_call', call: { id: 'call_weather', name: 'weather', arguments: '{"city": "Zürich"}' } },
        // A call without arguments streams none: the runtime gets `{}`, which its tools parse.
        { kind: 'tool_call', call: { id: 'call_clock', name: 'clock', arguments: '{}' } },
        { kind: 'usage', promptTokens: 80, completionTokens: 25, costUsd: 0 },
      ]);
    });

    it('takes whole calls sent without an index, in one chunk or in several', async () => {
      const whole = (...calls: Array<[string, string, string]>) => ({
        choices: [{ index: 0, delta: { tool_calls: calls.map(([id, name, args]) => ({ id, type: 'function', function: { name, arguments: args } })) } }],
      });
      server.answer(
        stream([
          chunk.role(),
          whole(['c1', 'clock', '{}'], ['c2', 'calculator', '{"expression":"1+1"}']),
          whole(['c3', 'clock', '']),
          chunk.finish('tool_calls'),
        ]),
      );
      const calls = (await collect(provider().turn(request()))).flatMap((part) => (part.kind === 'tool_call' ? [part.call] : []));
      expect(calls).toEqual([
        { id: 'c1', name: 'clock', arguments: '{}' },
        { id: 'c2', name: 'calculator', arguments: '{"expression":"1+1"}' },
        { id: 'c3', name: 'clock', arguments: '{}' },
      ]);
    });

    it("streams a reasoning model's thinking before its reply", async () => {
      server.answer(stream([chunk.role(), chunk.reasoning('The user greets; '), chunk.reasoning('greet back.'), ...textTurn(['Hi!']).slice(1)]));
      const parts = await collect(provider().turn(request()));
      expect(parts.slice(0, 3)).toEqual([
        { kind: 'thinking', text: 'The user greets; ' },
        { kind: 'thinking', text: 'greet back.' },
        { kind: 'text', text: 'Hi!' },
      ]);
    });

    it('prices the usage with the configured prices per 1k tokens, and reports none when the server counts none', async () => {
      server.answer(stream(textTurn(['a'], [1_000, 2_000])), stream([chunk.role(), chunk.text('b'), chunk.finish('stop')]));
      const priced = provider({ pricePer1k: { prompt: 0.5, completion: 1.5 } });
      expect((await collect(priced.turn(request()))).at(-1)).toEqual({ kind: 'usage', promptTokens: 1_000, completionTokens: 2_000, costUsd: 3.5 });
      expect(await collect(priced.turn(request()))).toEqual([{ kind: 'text', text: 'b' }]);
    });

    it('does not count the time the runtime holds a part against the server', async () => {
      server.answer(stream(textTurn(['first', 'second'])));
      const parts: ModelStreamPart[] = [];
      for await (const part of provider({ timeoutMs: 500 }).turn(request())) {
        // Three timeouts long, as when the runtime publishes under load or runs a slow tool.
        if (parts.push(part) === 1) await new Promise((resolve) => setTimeout(resolve, 1_500));
      }
      expect(parts.map((part) => part.kind)).toEqual(['text', 'text', 'usage']);
    });
  });

  describe('errors and retries', () => {
    it('retries a 429 after the server-given pause, then streams', async () => {
      server.answer(status(429, { error: { message: 'Rate limit reached', type: 'requests' } }, { 'retry-after-ms': '30' }), stream(textTurn(['fine'])));
      const parts = await collect(provider().turn(request()));
      expect(parts[0]).toEqual({ kind: 'text', text: 'fine' });
      expect(server.requests).toHaveLength(2);
    });

    it('gives up on a 500 after the configured retries: MODEL_UNAVAILABLE, retryable', async () => {
      server.answer(status(500, { error: { message: 'The server had an error' } }));
      const { error } = await failure(provider({ maxRetries: 2 }).turn(request()));
      expect(error).toMatchObject({ code: 'MODEL_UNAVAILABLE', retryable: true });
      expect(error.message).toMatch(/answered 500: The server had an error \(after 3 attempts\)/);
      expect(server.requests).toHaveLength(3);
    });

    it.each([
      [401, { error: { message: 'Incorrect API key provided: sk-tes***cret', code: 'invalid_api_key' } }, /401: Incorrect API key/],
      [400, { error: { message: "'messages' must contain at least one message" } }, /400: 'messages' must/],
      [404, { error: "model 'llama9' not found, try pulling it first" }, /404: model 'llama9' not found/],
    ])('does not retry a %i: MODEL_REJECTED with the reason the server gave, never the key', async (code, body, reason) => {
      server.answer(status(code, body));
      const { parts, error } = await failure(provider().turn(request()));
      expect(parts).toEqual([]);
      expect(error).toMatchObject({ code: 'MODEL_REJECTED', retryable: false });
      expect(error.message).toMatch(reason);
      expect(error.message).not.toContain('sk-test-secret');
      expect(server.requests).toHaveLength(1);
    });

    it('retries a connection reset before anything streamed', async () => {
      server.answer(reset, stream(textTurn(['after reset'])));
      expect((await collect(provider().turn(request())))[0]).toEqual({ kind: 'text', text: 'after reset' });
      expect(server.requests).toHaveLength(2);
    });

    it('never retries once a part is out: a reset mid-stream is MODEL_UNAVAILABLE after the parts', async () => {
      server.answer(stream([chunk.role(), chunk.text('half an ans')], { then: 'reset' }));
      const { parts, error } = await failure(provider().turn(request()));
      expect(parts).toEqual([{ kind: 'text', text: 'half an ans' }]);
      expect(error).toMatchObject({ code: 'MODEL_UNAVAILABLE', retryable: true });
      expect(server.requests).toHaveLength(1);
    });

    it('times out on a server that never answers: MODEL_TIMEOUT, not retried, connection closed', async () => {
      server.answer(silence);
      const started = Date.now();
      const { error } = await failure(provider({ timeoutMs: 300 }).turn(request()));
      expect(error).toMatchObject({ code: 'MODEL_TIMEOUT' });
      expect(error.message).toMatch(/did not answer: nothing for 300 ms/);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(server.requests).toHaveLength(1);
      await server.requests[0].clientLeft;
    });

    it('times out on a stream that stalls mid-way, after the parts it sent', async () => {
      server.answer(stream([chunk.role(), chunk.text('one '), chunk.text('two ')], { then: 'stall' }));
      const { parts, error } = await failure(provider({ timeoutMs: 300 }).turn(request()));
      expect(parts).toEqual([
        { kind: 'text', text: 'one ' },
        { kind: 'text', text: 'two ' },
      ]);
      expect(error).toMatchObject({ code: 'MODEL_TIMEOUT' });
      expect(error.message).toMatch(/stalled mid-stream/);
      await server.requests[0].clientLeft;
    });

    it.each([
      ['a chunk that is not JSON', stream([chunk.role(), chunk.text('ok'), '{"choices": [{"delta": {"content"']), 'MODEL_BAD_RESPONSE', /not JSON/],
      ['a chunk without choices', stream([chunk.role(), '{"object": "chat.completion.chunk"}']), 'MODEL_BAD_RESPONSE', /without a choices array/],
      [
        'JSON instead of an event stream',
        status(200, { choices: [{ message: { content: 'hi' } }] }),
        'MODEL_BAD_RESPONSE',
        /application\/json instead of an event stream/,
      ],
      ['an error reported mid-stream', stream([chunk.role(), '{"error": {"message": "model overloaded", "code": 500}}']), 'MODEL_FAILED', /overloaded/],
    ])('rejects %s without retrying', async (_what, answer, code, message) => {
      server.answer(answer);
      const { error } = await failure(provider().turn(request()));
      expect(error).toMatchObject({ code, retryable: false });
      expect(error.message).toMatch(message);
      expect(server.requests).toHaveLength(1);
    });
  });

  describe('abort', () => {
    it('closes the connection at once on abort mid-stream and ends without another part', async () => {
      server.answer(stream([chunk.role(), chunk.text('first')], { then: 'stall' }));
      const controller = new AbortController();
      const turn = provider({ timeoutMs: 30_000 }).turn(request({ signal: controller.signal }));
      expect(await turn.next()).toEqual({ done: false, value: { kind: 'text', text: 'first' } });

      const pending = turn.next(); // waits on the stalled server
      const abortedAt = Date.now();
      controller.abort();
      expect(await pending).toEqual({ done: true, value: undefined });
      await server.requests[0].clientLeft;
      expect(Date.now() - abortedAt).toBeLessThan(1_000);
      expect(await turn.next()).toEqual({ done: true, value: undefined });
    });

    it('sends nothing when the signal is already aborted, and stops a retry pause at once', async () => {
      expect(await collect(provider().turn(request({ signal: AbortSignal.abort() })))).toEqual([]);
      expect(server.requests).toHaveLength(0);

      server.answer(status(503, { error: { message: 'busy' } }, { 'retry-after': '30' }));
      const controller = new AbortController();
      const parts = collect(provider().turn(request({ signal: controller.signal })));
      await waitFor(() => server.requests.length === 1, { message: 'the first request' });
      controller.abort();
      expect(await parts).toEqual([]);
      expect(server.requests).toHaveLength(1);
    });
  });
});

async function collect(turn: AsyncIterable<ModelStreamPart>): Promise<ModelStreamPart[]> {
  const parts: ModelStreamPart[] = [];
  for await (const part of turn) parts.push(part);
  return parts;
}

/** The parts that came before the turn failed, and its error (which must be a ModelProviderError). */
async function failure(turn: AsyncIterable<ModelStreamPart>): Promise<{ parts: ModelStreamPart[]; error: ModelProviderError }> {
  const parts: ModelStreamPart[] = [];
  try {
    for await (const part of turn) parts.push(part);
  } catch (error) {
    if (!(error instanceof ModelProviderError)) throw error;
    return { parts, error };
  }
  throw new Error(`the turn succeeded with ${JSON.stringify(parts)}`);
}
