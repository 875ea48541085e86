/**
 * A team's own DAG node function (docs/dags.md, "Your own node functions"): counts the words
 * of its args, or of its map item, or of every string its predecessors output. Registered on
 * the worker's NodeFunctions at start, a `task` node runs it with `config: { fn: 'word_count' }`.
 */
import type { NodeFunction, NodeFunctions } from '../nodes/node-functions';

export const wordCount: NodeFunction = ({ args, item, inputs, signal }) => {
  // Long work should look at `signal` now and then: it aborts on cancel, timeout and shutdown.
  signal.throwIfAborted();
  const texts = [args ?? item ?? Object.values(inputs)].flat().filter((t): t is string => typeof t === 'string');
  return { words: texts.reduce((sum, text) => sum + (text.match(/\S+/g)?.length ?? 0), 0) };
};

/** Call from the worker's bootstrap (apps/worker/src/main.ts), before the queues start. */
export function registerOwnNodeFunctions(functions: NodeFunctions): void {
  functions.register('word_count', wordCount);
}
