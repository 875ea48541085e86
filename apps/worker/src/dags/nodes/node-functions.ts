import { Injectable } from '@nestjs/common';

/** What a `task` node's function gets. */
export interface NodeFunctionContext {
  /** The node's `config.args`. */
  args: unknown;
  /** Its predecessors' outputs, by node id. */
  inputs: Record<string, unknown>;
  /** A map item's own item (`config.item`), for nodes a `map` added. */
  item?: unknown;
  executionId: string;
  nodeId: string;
  /** Which try this is (1 for the first; see the node's `retry`). */
  attempt: number;
  /** Aborts on cancel, on the node's timeout and at the worker's shutdown deadline: stop soon. */
  signal: AbortSignal;
}

/** A `task` node's function: its result (JSON) is the node's output; a throw fails the attempt. */
export type NodeFunction = (context: NodeFunctionContext) => unknown;

/** A node function refused its input: the node fails with this message. */
export class NodeFunctionError extends Error {
  override readonly name = 'NodeFunctionError';
}

const numbers = (value: unknown): number[] => {
  const list = Array.isArray(value) ? value : value !== null && typeof value === 'object' ? Object.values(value) : [value];
  return list.flatMap((v) => (Array.isArray(v) ? numbers(v) : typeof v === 'number' ? [v] : []));
};

/**
 * The built-in functions of PROTOCOL.md §10, each on its args, else its map item, else its
 * inputs: `echo` (returns them), `sum` (of the numbers in them), `concat` (their strings
 * joined) and `fail` (throws `args.message`; with `args.untilAttempt: n` only on the
 * attempts before the n-th, which returns `{ attempt }`: a failure that a retry gets past).
 */
export const BUILT_IN_NODE_FUNCTIONS: Record<string, NodeFunction> = {
  echo: ({ args, item, inputs }) => args ?? item ?? inputs,
  sum: ({ args, item, inputs }) => numbers(args ?? item ?? inputs).reduce((a, b) => a + b, 0),
  concat: ({ args, item, inputs }) => {
    const parts = Array.isArray(args) ? args : Array.isArray(item) ? item : item !== undefined ? [item] : Object.values(inputs);
    return parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('');
  },
  fail: ({ args, attempt }) => {
    const options = (args !== null && typeof args === 'object' ? args : {}) as { message?: unknown; untilAttempt?: unknown };
    if (typeof options.untilAttempt === 'number' && attempt >= options.untilAttempt) return { attempt };
    throw new NodeFunctionError(options.message !== undefined ? String(options.message) : 'node failed');
  },
};

/**
 * The `task` functions this worker runs, by name: the built-ins plus what a team registers
 * at start (docs/dags.md). Every worker that takes DAG node jobs must register the same names.
 */
@Injectable()
export class NodeFunctions {
  private readonly functions = new Map<string, NodeFunction>(Object.entries(BUILT_IN_NODE_FUNCTIONS));

  register(name: string, fn: NodeFunction): this {
    if (this.functions.has(name)) throw new Error(`node function ${name} is registered already`);
    this.functions.set(name, fn);
    return this;
  }

  get(name: string): NodeFunction | undefined {
    return this.functions.get(name);
  }
}
