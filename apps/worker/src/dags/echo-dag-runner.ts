import type { DagExecutionJob, ExecutionStatus } from '@app/backplane';
import { type DagEvent, type DagNodeDef, type DagState, edgeKey, type ExecutionEndStatus, topologicalOrder } from '@app/protocol';
import { HandedBack } from '../ops/hand-back';

export interface DagRunnerPorts {
  publish(event: DagEvent): Promise<unknown>;
  status(): Promise<ExecutionStatus | null>;
  finish(status: ExecutionEndStatus): Promise<ExecutionStatus | null>;
  openGate(nodeId: string): Promise<void>;
  gate(nodeId: string): Promise<string | null>;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Node states a resumed execution keeps; a node that was `running` or `waiting` runs again. */
const SETTLED_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'skipped']);

/** How often a waiting execution (paused, or at a human gate) looks at its record. */
const POLL_MS = 50;

class Cancelled extends Error {}

/**
 * A minimal DAG engine so DAG streams run end to end: nodes run one at a time in
 * topological order. Node kinds: `task` (default; waits `config.durationMs`, costs
 * `config.costUsd`), `human` (a gate that waits for `human_decision`) and `fail` (fails,
 * which skips what depends on it). It honours pause, resume and cancel between and during
 * nodes. The real engine (parallel branches, parked jobs, retries) comes in a later issue.
 *
 * An execution can move between workers: when `signal` aborts (the worker's shutdown
 * deadline) the runner stops between steps and throws {@link HandedBack}, publishing nothing
 * more; the worker that picks the job up next passes the stream's state as `resumeFrom`, and
 * the runner keeps every settled node and runs the rest.
 */
export class EchoDagRunner {
  private spent = 0;

  constructor(
    private readonly ports: DagRunnerPorts,
    private readonly defaultNodeMs: number,
    private readonly signal?: AbortSignal,
  ) {}

  async run(job: DagExecutionJob, resumeFrom?: DagState): Promise<ExecutionEndStatus> {
    const { definition } = job;
    const order = topologicalOrder(definition) ?? [];
    const nodes = new Map(definition.nodes.map((n) => [n.id, n]));
    const results: Record<string, unknown> = {};
    const blocked = new Set<string>();
    const settled = new Set<string>();
    let status: ExecutionEndStatus = 'completed';
    const before = new Map((resumeFrom?.nodes ?? []).filter((n) => SETTLED_STATUSES.has(n.status)).map((n) => [n.id, n]));
    const activeEdges = new Set(resumeFrom?.activeEdges ?? []);
    this.spent = resumeFrom?.cost?.spent ?? 0;

    if (!resumeFrom) {
      await this.ports.publish({
        type: 'execution_started',
        payload: {
          executionId: job.executionId,
          nodes: definition.nodes,
          edges: definition.edges,
          ...(job.dagId !== undefined ? { dagId: job.dagId } : {}),
          ...(job.budgetUsd !== undefined ? { budgetUsd: job.budgetUsd } : {}),
        },
      });
    }
    try {
      for (const nodeId of order) {
        await this.checkpoint();
        const previous = before.get(nodeId);
        if (previous) {
          settled.add(nodeId);
          if (previous.status === 'completed') {
            results[nodeId] = previous.output;
            await this.activateEdges(nodeId, job, activeEdges);
          } else {
            if (previous.status === 'failed') status = 'failed';
            this.block(nodeId, job, blocked);
          }
          continue;
        }
        if (blocked.has(nodeId)) {
          await this.ports.publish({ type: 'node_state', payload: { nodeId, status: 'skipped' } });
          settled.add(nodeId);
          this.block(nodeId, job, blocked);
          continue;
        }
        const node = nodes.get(nodeId) as DagNodeDef;
        const outcome = await this.runNode(node, job);
        settled.add(nodeId);
        if (outcome.ok) {
          results[nodeId] = outcome.output;
          await this.activateEdges(nodeId, job, activeEdges);
        } else {
          status = 'failed';
          this.block(nodeId, job, blocked);
        }
      }
    } catch (error) {
      // HandedBack (and any failure) leaves the execution as it is, for the next attempt.
      if (!(error instanceof Cancelled)) throw error;
      status = 'cancelled';
      await this.cancelRemaining(order, settled);
    }
    // A cancel that landed after the last node still wins.
    const final = (await this.ports.status()) === 'cancelling' ? 'cancelled' : status;
    await this.ports.finish(final);
    await this.ports.publish({ type: 'execution_complete', payload: { status: final, results } });
    return final;
  }

  private async runNode(node: DagNodeDef, job: DagExecutionJob): Promise<{ ok: true; output: unknown } | { ok: false }> {
    const nodeId = node.id;
    const config = node.config ?? {};
    await this.ports.publish({ type: 'node_state', payload: { nodeId, status: 'running' } });
    const started = Date.now();

    if (node.kind === 'human') {
      // A resumed execution finds its gate open (or already decided): never reopen it.
      if ((await this.ports.gate(nodeId)) === null) {
        await this.ports.openGate(nodeId);
        await this.ports.publish({ type: 'node_state', payload: { nodeId, status: 'waiting' } });
        await this.ports.publish({
          type: 'human_gate_waiting',
          payload: {
            nodeId,
            prompt: typeof config.prompt === 'string' ? config.prompt : `Approve ${node.label ?? nodeId}?`,
            options: ['approve', 'reject', 'modify'],
          },
        });
      }
      const decision = await this.waitFor(async () => {
        const gate = await this.ports.gate(nodeId);
        return gate && gate !== 'waiting' ? gate : null;
      });
      if (decision === 'reject') {
        await this.ports.publish({ type: 'node_state', payload: { nodeId, status: 'failed', error: 'rejected at the human gate' } });
        return { ok: false };
      }
      const output = { decision };
      await this.ports.publish({ type: 'node_state', payload: { nodeId, status: 'completed', output, metrics: { durationMs: Date.now() - started } } });
      return { ok: true, output };
    }

    const duration = typeof config.durationMs === 'number' ? config.durationMs : this.defaultNodeMs;
    await this.waitFor(async () => (Date.now() - started >= duration ? true : null));
    if (node.kind === 'fail') {
      await this.ports.publish({ type: 'node_state', payload: { nodeId, status: 'failed', error: String(config.message ?? 'node failed') } });
      return { ok: false };
    }
    const cost = typeof config.costUsd === 'number' ? config.costUsd : 0;
    if (cost > 0) {
      this.spent += cost;
      const budget = job.budgetUsd ?? 0;
      await this.ports.publish({ type: 'cost_update', payload: { spent: this.spent, budget, remaining: budget - this.spent } });
      if (job.budgetUsd !== undefined && this.spent > job.budgetUsd) {
        await this.ports.publish({ type: 'error', payload: { nodeId, code: 'BUDGET_EXCEEDED', message: `spent ${this.spent} of ${job.budgetUsd}` } });
        await this.ports.publish({ type: 'node_state', payload: { nodeId, status: 'failed', error: 'budget exceeded' } });
        return { ok: false };
      }
    }
    const output = { echo: config.input ?? node.label ?? nodeId };
    await this.ports.publish({ type: 'node_state', payload: { nodeId, status: 'completed', output, metrics: { durationMs: Date.now() - started } } });
    return { ok: true, output };
  }

  /** Waits until `probe` yields, holding while paused and stopping on a cancel. */
  private async waitFor<T>(probe: () => Promise<T | null>): Promise<T> {
    for (;;) {
      await this.checkpoint();
      const value = await probe();
      if (value !== null) return value;
      await this.pause();
    }
  }

  /** Between steps: stop for a hand-back, throw on a cancel, hold while paused. */
  private async checkpoint(): Promise<void> {
    for (;;) {
      if (this.signal?.aborted) throw new HandedBack();
      const status = await this.ports.status();
      if (status === 'cancelling' || status === 'cancelled') throw new Cancelled();
      if (status !== 'paused') return;
      await this.pause();
    }
  }

  private async pause(): Promise<void> {
    try {
      await this.ports.sleep(POLL_MS, this.signal);
    } catch (error) {
      if (this.signal?.aborted) throw new HandedBack();
      throw error;
    }
  }

  /** Announces the edges out of a completed node (those a resumed execution has not yet). */
  private async activateEdges(nodeId: string, job: DagExecutionJob, active: Set<string>): Promise<void> {
    for (const edge of job.definition.edges) {
      if (edge.from !== nodeId || active.has(edgeKey(edge))) continue;
      await this.ports.publish({ type: 'edge_active', payload: edge });
      active.add(edgeKey(edge));
    }
  }

  private block(nodeId: string, job: DagExecutionJob, blocked: Set<string>): void {
    for (const edge of job.definition.edges) if (edge.from === nodeId) blocked.add(edge.to);
  }

  private async cancelRemaining(order: string[], settled: Set<string>): Promise<void> {
    for (const nodeId of order) {
      if (!settled.has(nodeId)) {
        await this.ports.publish({ type: 'node_state', payload: { nodeId, status: 'cancelled' } });
      }
    }
  }
}
