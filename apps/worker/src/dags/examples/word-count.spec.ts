import { NodeFunctions } from '../nodes/node-functions';
import { NodeRunner } from '../nodes/node-runner';
import { registerOwnNodeFunctions } from './word-count';

/** docs/dags.md's own node function, run the way a worker runs a `task` node. */
it('runs a registered function as a task node, on its args or on its inputs', async () => {
  const functions = new NodeFunctions();
  registerOwnNodeFunctions(functions);
  const runner = new NodeRunner(functions, 0);
  const signal = new AbortController().signal;
  const node = (config: Record<string, unknown>) => ({ id: 'count', config: { fn: 'word_count', ...config } });
  expect(await runner.run({ executionId: 'e', node: node({ args: 'one two three' }), inputs: {}, attempt: 1, signal })).toEqual({ words: 3 });
  expect(await runner.run({ executionId: 'e', node: node({}), inputs: { a: 'hello world', b: 'again', c: 7 }, attempt: 1, signal })).toEqual({ words: 3 });
  await expect(runner.run({ executionId: 'e', node: { id: 'x', config: { fn: 'nope' } }, inputs: {}, attempt: 1, signal })).rejects.toThrow(
    'no node function nope on this worker',
  );
});

it('stops a node at its timeout', async () => {
  const runner = new NodeRunner(new NodeFunctions(), 0);
  const node = { id: 'slow', config: { durationMs: 5_000 }, timeoutMs: 50 };
  await expect(runner.run({ executionId: 'e', node, inputs: {}, attempt: 1, signal: new AbortController().signal })).rejects.toThrow('timed out after 50 ms');
});
