import { DemoProvider } from './demo-provider';
import { type ChatMessage, ModelProviderError, type ModelStreamPart, type ModelTurnRequest } from './model-provider';

const SLOW_CHUNK_MS = 5;
const demo = new DemoProvider({ chunkDelayMs: 0, slowChunkMs: SLOW_CHUNK_MS });

async function turn(messages: ChatMessage[], extra: Partial<ModelTurnRequest> = {}): Promise<ModelStreamPart[]> {
  const parts: ModelStreamPart[] = [];
  for await (const part of demo.turn({ model: 'demo', messages, tools: [], signal: new AbortController().signal, ...extra })) parts.push(part);
  return parts;
}
const user = (content: string): ChatMessage[] => [
  { role: 'system', content: 'be brief' },
  { role: 'user', content },
];
const text = (parts: ModelStreamPart[]) => parts.flatMap((p) => (p.kind === 'text' ? [p.text] : []));

describe('DemoProvider (PROTOCOL.md §9 directives)', () => {
  it('thinks, then streams the reply in at least three chunks, then usage', async () => {
    const parts = await turn(user('hi'));
    expect(parts[0]).toEqual({ kind: 'thinking', text: 'Echoing 2 characters with demo.' });
    expect(text(parts).length).toBeGreaterThanOrEqual(3);
    expect(text(parts).join('')).toBe('Echo: hi');
    expect(parts[parts.length - 1]).toEqual({ kind: 'usage', promptTokens: 3, completionTokens: 2, costUsd: 0 });
  });

  it('/tool calls the tool with its JSON arguments, then replies with the result', async () => {
    const parts = await turn(user('/tool calculator {"expression":"2+2"}'));
    const call = parts.find((p) => p.kind === 'tool_call');
    expect(call).toEqual({ kind: 'tool_call', call: { id: 'demo-call-1', name: 'calculator', arguments: '{"expression":"2+2"}' } });
    expect(text(parts)).toEqual([]);
    const after = await turn([
      ...user('/tool calculator {"expression":"2+2"}'),
      { role: 'assistant', content: '', toolCalls: [{ id: 'demo-call-1', name: 'calculator', arguments: '{}' }] },
      { role: 'tool', toolCallId: 'demo-call-1', content: '4' },
    ]);
    expect(text(after).join('')).toBe('The calculator tool returned: 4');
    const failed = await turn([
      ...user('/tool delete_file {"path":"x"}'),
      { role: 'assistant', content: '', toolCalls: [{ id: 'demo-call-1', name: 'delete_file', arguments: '{}' }] },
      { role: 'tool', toolCallId: 'demo-call-1', content: 'error: the approval was rejected' },
    ]);
    expect(text(failed).join('')).toBe('The delete_file tool failed: the approval was rejected');
  });

  it('/tool without arguments passes {}', async () => {
    const parts = await turn(user('/tool clock'));
    expect(parts.find((p) => p.kind === 'tool_call')).toMatchObject({ call: { name: 'clock', arguments: '{}' } });
  });

  it('/plan proposes three steps; a plan step is streamed as its own reply', async () => {
    const parts = await turn(user('/plan ship it'));
    expect(parts.find((p) => p.kind === 'plan')).toEqual({
      kind: 'plan',
      goal: 'ship it',
      steps: ['Gather what is needed to ship it', 'Do it: ship it', 'Check the result and report'],
    });
    const step = await turn(user('Carry out step 2'), { planStep: { index: 2, total: 3, text: 'Do it' } });
    expect(text(step).join('')).toBe('Step 2/3: Do it — done.');
  });

  it('/slow n streams n chunks about slowChunkMs apart, and stops at the abort', async () => {
    const started = Date.now();
    const parts = await turn(user('/slow 4'));
    expect(text(parts)).toEqual(['chunk 1/4 ', 'chunk 2/4 ', 'chunk 3/4 ', 'chunk 4/4 ']);
    // Three pauses; a timer may fire up to a millisecond early on the millisecond clock (seen: 14).
    expect(Date.now() - started).toBeGreaterThanOrEqual(3 * (SLOW_CHUNK_MS - 1));

    const controller = new AbortController();
    const seen: string[] = [];
    const consume = async () => {
      for await (const part of demo.turn({ model: 'demo', messages: user('/slow 1000'), tools: [], signal: controller.signal })) {
        if (part.kind === 'text') seen.push(part.text);
        if (seen.length === 2) controller.abort(new Error('cancelled'));
      }
    };
    await expect(consume()).rejects.toThrow('cancelled');
    expect(seen).toHaveLength(2);
  });

  it('/fail fails the turn with a ModelProviderError', async () => {
    const failure = turn(user('/fail now'));
    await expect(failure).rejects.toBeInstanceOf(ModelProviderError);
    await expect(failure).rejects.toMatchObject({ code: 'MODEL_FAILED', message: 'the demo model was asked to fail (/fail)' });
  });
});
