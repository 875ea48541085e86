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
 * The built-in functions of PROTOCOL.md §10: `echo` (its args, or the item, or its inputs),
 * `sum` (of the numbers in its args, else in its inputs), `concat` (its args' strings, else its
 * inputs', joined) and `fail` (throws `config.args.message`).
 */
export const BUILT_IN_NODE_FUNCTIONS: Record<string, NodeFunction> = {
  echo: ({ args, item, inputs }) => args ?? item ?? inputs,
  sum: ({ args, inputs }) => numbers(args ?? inputs).reduce((a, b) => a + b, 0),
  concat: ({ args, inputs }) => {
    const parts = Array.isArray(args) ? args : Object.values(inputs);
    return parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('');
  },
  fail: ({ args }) => {
    const message = args !== null && typeof args === 'object' && 'message' in args ? String(args.message) : 'node failed';
    throw new NodeFunctionError(message);
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
