import { type DagNodeDef, nodeKind } from '@app/protocol';
import { sleep } from '../../ops/abortable-sleep';
import { type AgentParts, runLlmNode, runToolNode } from './agent-nodes';
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
  /** Whether a predecessor is a `human_gate` (a risky `tool` node's approval). */
  gated?: boolean;
  /** Aborts on cancel or at the shutdown deadline. */
  signal: AbortSignal;
}

/**
 * Runs the work of a `task`, `delay`, `llm` or `tool` node (gates and maps are the engine's) within its
 * `timeoutMs`. Resolves with the output; rejects with the reason of an abort (cancel,
 * hand-back, NodeTimeout) or with the node's own failure.
 */
export class NodeRunner {
  constructor(
    private readonly functions: NodeFunctions,
    private readonly defaultTaskMs: number,
    private readonly agents?: AgentParts,
  ) {}

  async run(request: NodeWork): Promise<unknown> {
    const { node, signal } = request;
    const timeout = new AbortController();
    const timer =
      node.timeoutMs !== undefined ? setTimeout(() => timeout.abort(new NodeTimeout(`timed out after ${node.timeoutMs} ms`)), node.timeoutMs) : undefined;
    const both = AbortSignal.any([signal, timeout.signal]);
    try {
      const work = this.work({ ...request, signal: both });
      // A function that ignores its signal still loses the race to the abort.
      const aborted = new Promise<never>((_, reject) => both.addEventListener('abort', () => reject(both.reason), { once: true }));
      aborted.catch(() => undefined);
      return await Promise.race([work, aborted]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async work({ executionId, node, inputs, attempt, gated = false, signal }: NodeWork): Promise<unknown> {
    const config = node.config ?? {};
    const kind = nodeKind(node);
    if (kind === 'delay') {
      await sleep(Number(config.ms), signal);
      return {};
    }
    if (kind === 'llm' || kind === 'tool') {
      if (!this.agents) throw new NodeFunctionError(`this worker runs no ${kind} nodes`);
      return kind === 'llm' ? runLlmNode(this.agents, node, inputs, signal) : runToolNode(this.agents, node, gated, executionId, signal);
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
