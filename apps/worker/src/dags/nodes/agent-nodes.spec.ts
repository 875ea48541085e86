import { DemoProvider } from '../../agents/providers/demo-provider';
import { ProviderRegistry } from '../../agents/providers/provider-registry';
import { builtInTools } from '../../agents/tools/tool-registry';
import { type AgentParts, runLlmNode, runToolNode } from './agent-nodes';

const parts: AgentParts = {
  providers: new ProviderRegistry().register(new DemoProvider({ chunkDelayMs: 0 })),
  tools: builtInTools({ allowedHosts: [], timeoutMs: 1000 }),
  defaultBot: { provider: 'demo', model: 'demo', approvalThreshold: 'high' },
};
const signal = new AbortController().signal;

it('an llm node is one turn of the default provider on its prompt and inputs', async () => {
  const output = await runLlmNode(parts, { id: 'ask', kind: 'llm', config: { prompt: 'Summarise' } }, { notes: 'redis is fast' }, signal);
  expect(output.text.length).toBeGreaterThan(0);
  expect(output.costUsd).toBe(0);
  // The demo model's /fail fails the turn: the node fails (and is retried, if it says so).
  await expect(runLlmNode(parts, { id: 'ask', kind: 'llm', config: { prompt: '/fail' } }, {}, signal)).rejects.toThrow();
});

it('an llm node on a model AGENT_PRICES lists is priced from its tokens, as agent runs are', async () => {
  const priced: AgentParts = { ...parts, prices: { demo: { prompt: 1, completion: 2 } } };
  const output = await runLlmNode(priced, { id: 'ask', kind: 'llm', config: { prompt: 'Summarise this' } }, {}, signal);
  // The demo model counts words: a positive price per 1k tokens gives a positive cost.
  expect(output.costUsd).toBeGreaterThan(0);
  const other = await runLlmNode(priced, { id: 'ask', kind: 'llm', config: { prompt: 'Summarise this', model: 'unlisted' } }, {}, signal);
  expect(other.costUsd).toBe(0);
});

it('a tool node runs a registered tool; a risky one only right after a human gate', async () => {
  expect(await runToolNode(parts, { id: 'calc', kind: 'tool', config: { tool: 'calculator', args: { expression: '2+2' } } }, false, 'e', signal)).toBe('4');
  const remove = { id: 'rm', kind: 'tool', config: { tool: 'delete_file', args: { path: '/tmp/x' } } };
  await expect(runToolNode(parts, remove, false, 'e', signal)).rejects.toThrow('tool delete_file (risk high) runs only right after a human_gate');
  await expect(runToolNode(parts, remove, true, 'e', signal)).resolves.toBeDefined();
  await expect(runToolNode(parts, { id: 'x', kind: 'tool', config: { tool: 'teleport' } }, false, 'e', signal)).rejects.toThrow(
    'no tool teleport on this worker',
  );
});
