import { type DagNodeDef, nodeKind } from '@app/protocol';
import { sleep } from '../../ops/abortable-sleep';
import { NodeFunctionError, type NodeFunctions } from './node-functions';

/** The reason a node's signal aborts with when its `timeoutMs` passes. */
export class NodeTimeout extends Error {
  override readonly name = 'NodeTimeout';
}

export interface NodeWork {
  executionId: string;
  node: DagNodeDef;
  inputs: Record<string, unknown>;
  attempt: number;
  /** Aborts on cancel or at the shutdown deadline. */
  signal: AbortSignal;
}

/**
 * Runs the work of a `task` or `delay` node (gates and maps are the engine's) within its
 * `timeoutMs`. Resolves with the output; rejects with the reason of an abort (cancel,
 * hand-back, NodeTimeout) or with the node's own failure.
 */
export class NodeRunner {
  constructor(
    private readonly functions: NodeFunctions,
    private readonly defaultTaskMs: number,
  ) {}

  async run({ executionId, node, inputs, attempt, signal }: NodeWork): Promise<unknown> {
    const timeout = new AbortController();
    const timer =
      node.timeoutMs !== undefined ? setTimeout(() => timeout.abort(new NodeTimeout(`timed out after ${node.timeoutMs} ms`)), node.timeoutMs) : undefined;
    const both = AbortSignal.any([signal, timeout.signal]);
    try {
      const work = this.work({ executionId, node, inputs, attempt, signal: both });
      // A function that ignores its signal still loses the race to the abort.
      const aborted = new Promise<never>((_, reject) => both.addEventListener('abort', () => reject(both.reason), { once: true }));
      aborted.catch(() => undefined);
      return await Promise.race([work, aborted]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async work({ executionId, node, inputs, attempt, signal }: NodeWork): Promise<unknown> {
    const config = node.config ?? {};
    if (nodeKind(node) === 'delay') {
      await sleep(Number(config.ms), signal);
      return {};
    }
    const duration = typeof config.durationMs === 'number' ? config.durationMs : this.defaultTaskMs;
    if (duration > 0) await sleep(duration, signal);
    const name = node.kind === 'fail' ? 'fail' : typeof config.fn === 'string' ? config.fn : 'echo';
    const fn = this.functions.get(name);
    if (!fn) throw new NodeFunctionError(`no node function ${name} on this worker`);
    // The echo engine's `fail` kind took its message from config.message.
    const args = node.kind === 'fail' ? { message: config.message ?? 'node failed' } : config.args;
    return (await fn({ args, inputs, item: config.item, executionId, nodeId: node.id, attempt, signal })) ?? null;
  }
}
