import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import type { Job, Queue } from 'bullmq';
import {
  type DagExecutionJob,
  type DagNodeJob,
  dagNodeJobId,
  DagEngineStore,
  DomainStore,
  type EngineStep,
  FINISHED_EXECUTION,
  QUEUES,
  type StoredNode,
} from '@app/backplane';
import { type DagNodeDef, type HumanDecision, nodeKind } from '@app/protocol';
import { ProviderRegistry } from '../agents/providers/provider-registry';
import { ToolRegistry } from '../agents/tools/tool-registry';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { EventSink } from '../ops/event-sink';
import { HAND_BACK_REASON, HandedBack } from '../ops/hand-back';
import { WorkerRedis } from '../ops/worker-redis';
import { mapItems } from './nodes/map-items';
import { NodeAborts } from './node-aborts';
import { NodeFunctions } from './nodes/node-functions';
import { NodeRunner } from './nodes/node-runner';
import { StepEvents } from './step-events';

/** What a completed node adds to the spend: a task's `config.costUsd`, an llm node's reported cost. */
function nodeCost(node: DagNodeDef, output: unknown): number {
  const kind = nodeKind(node);
  if (kind === 'task' && typeof node.config?.costUsd === 'number') return node.config.costUsd;
  if (kind === 'llm' && typeof (output as { costUsd?: unknown } | null)?.costUsd === 'number') return (output as { costUsd: number }).costUsd;
  return 0;
}

/** A node attempt failed and BullMQ will try it again after its backoff. */
export class NodeAttemptFailed extends Error {
  override readonly name = 'NodeAttemptFailed';
}

/** Node jobs kept after they end, for tracing (processedBy) and BullMQ's dedupe by job id. */
const KEEP_NODE_JOBS = { removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } };

/**
 * The DAG engine. Each node execution is one BullMQ job on `{dag-nodes}`; between them, the
 * orchestration is a Lua step on the execution's state in Redis (DagEngineStore) run by
 * whoever ended something — a node job, a control job, the execution's start job: it decides
 * which nodes became ready (fan-in exactly once), hands them out within the concurrency limit
 * and ends the execution once. No process holds an execution: any worker continues it, a
 * paused one or one at a human gate holds no job at all. docs/architecture.md says why not
 * BullMQ flows.
 */
@Injectable()
export class DagEngine {
  readonly store: DagEngineStore;
  private readonly runner: NodeRunner;

  constructor(
    redis: WorkerRedis,
    private readonly domain: DomainStore,
    private readonly sink: EventSink,
    private readonly aborts: NodeAborts,
    functions: NodeFunctions,
    providers: ProviderRegistry,
    tools: ToolRegistry,
    @InjectQueue(QUEUES.dagNodes) private readonly nodeQueue: Queue<DagNodeJob>,
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
  ) {
    this.store = new DagEngineStore(redis.commands);
    this.runner = new NodeRunner(functions, config.echoNodeMs, { providers, tools, defaultBot: config.agents.defaultBot, prices: config.agents.prices });
  }

  /** The execution's job: announce it, lay it out, hand out its roots. */
  async startExecution(job: DagExecutionJob): Promise<string> {
    const { executionId, definition } = job;
    const execution = await this.domain.getExecution(executionId);
    if (!execution || FINISHED_EXECUTION.has(execution.status)) return 'skipped';
    const preds = new Map<string, string[]>(definition.nodes.map((n) => [n.id, []]));
    const succ = new Map<string, string[]>(definition.nodes.map((n) => [n.id, []]));
    for (const { from, to } of definition.edges) {
      preds.get(to)?.push(from);
      succ.get(from)?.push(to);
    }
    const nodes = definition.nodes.map((node) => ({ node, preds: preds.get(node.id) ?? [] }));
    const limit = definition.maxConcurrency ?? this.config.dagExecutionConcurrency;
    const step = await this.store.init(executionId, nodes, succ, {
      limit,
      ...(job.budgetUsd !== undefined ? { budgetUsd: job.budgetUsd } : {}),
      ...(job.inputs ? { inputs: job.inputs } : {}),
    });
    // Announced once the record says running, so a dashboard that sees it running can pause it
    // (announced first, a pause right after it met a record still 'queued': CONFLICT).
    const out = new StepEvents(this.sink, executionId, 'start', 0);
    await out.publish({
      type: 'execution_started',
      payload: {
        executionId,
        nodes: definition.nodes,
        edges: definition.edges,
        ...(job.dagId !== undefined ? { dagId: job.dagId } : {}),
        ...(job.budgetUsd !== undefined ? { budgetUsd: job.budgetUsd } : {}),
      },
    });
    await this.announce(out, step);
    return step.finish ?? 'started';
  }

  /** One node job: run the node's attempt and settle it (or park a gate, or hand the retry to BullMQ). */
  async runNode(job: Job<DagNodeJob>, signal: AbortSignal): Promise<string> {
    const { executionId, nodeId } = job.data;
    const attempt = job.attemptsMade + 1;
    const start = await this.store.start(executionId, nodeId);
    if (start === 'stale') return 'stale';
    // Paused after it was handed out: the processor parks the job until the resume.
    if (start === 'held') return 'held';
    const stored = await this.store.node(executionId, nodeId);
    if (!stored) throw new Error(`node ${nodeId} of ${executionId} has no stored definition`);
    const { node } = stored;
    const out = new StepEvents(this.sink, executionId, `node.${nodeId}`, attempt);
    if (start === 'abort') return this.cancelNode(out, node);
    await out.node(nodeId, 'running', attempt > 1 ? { metrics: { attempt } } : {});
    if (nodeKind(node) === 'human_gate') return this.openGate(out, node);

    const began = Date.now();
    let outcome = await this.store.recordedOutcome(executionId, nodeId, attempt);
    if (!outcome) {
      try {
        outcome = { ok: true, output: await this.work(executionId, stored, attempt, signal) };
      } catch (error) {
        if (signal.aborted && signal.reason === HAND_BACK_REASON) throw new HandedBack();
        if (signal.aborted) return this.cancelNode(out, node);
        outcome = { ok: false, error: error instanceof Error ? error.message : String(error) };
      }
      outcome = await this.store.recordOutcome(executionId, nodeId, attempt, outcome);
    }
    const metrics = { durationMs: Date.now() - began, ...(attempt > 1 ? { attempt } : {}) };
    if (outcome.ok) return this.completeNode(out, node, outcome.output, metrics, `node.${nodeId}`);
    if (attempt < (job.opts.attempts ?? 1)) {
      // BullMQ runs the next attempt after the backoff; until then the node is ready again.
      await out.node(nodeId, 'ready', { error: outcome.error, metrics: { attempt } });
      throw new NodeAttemptFailed(outcome.error);
    }
    return this.failNode(out, node, outcome.error, `node.${nodeId}`, metrics);
  }

  /**
   * A node job BullMQ gave up on without our settling it (it stalled past the limit, or its
   * last attempt threw out of the engine): the node fails, so the execution still ends.
   */
  async nodeLost(job: Job<DagNodeJob>, error: Error): Promise<void> {
    if (job.attemptsMade < (job.opts.attempts ?? 1)) return;
    const { executionId, nodeId } = job.data;
    const status = await this.store.nodeStatus(executionId, nodeId);
    if (status !== 'scheduled' && status !== 'running') return;
    const stored = await this.store.node(executionId, nodeId);
    if (!stored) return;
    await this.failNode(new StepEvents(this.sink, executionId, `lost.${nodeId}`, 0), stored.node, error.message, `lost.${nodeId}`);
  }

  /** A human gate's decision (recorded first by the control job): the gate node ends. */
  async decideGate(executionId: string, nodeId: string, decision: HumanDecision, feedback: string | undefined, userId: string, jobId: string): Promise<void> {
    // A gate the engine already ended (an execution that stopped sweeps it) is not decided any more.
    if ((await this.store.nodeStatus(executionId, nodeId)) !== 'waiting') return;
    const out = new StepEvents(this.sink, executionId, `control.${jobId}`, 0);
    await out.publish({ type: 'human_gate_resolved', payload: { nodeId, decision, resolvedBy: userId } });
    const stored = await this.store.node(executionId, nodeId);
    if (!stored) return;
    if (decision === 'reject') {
      await this.failNode(out, stored.node, 'rejected at the human gate', `control.${jobId}`);
      return;
    }
    const recorded = await this.store.recordOutcome(executionId, nodeId, 1, {
      ok: true,
      output: { decision, ...(feedback !== undefined ? { feedback } : {}) },
    });
    await this.completeNode(out, stored.node, recorded.ok ? recorded.output : null, {}, `control.${jobId}`);
  }

  /** After resume or cancel (the record changed first): hand out, sweep or end as the status says. */
  async advance(executionId: string, jobId: string, abortRunning: boolean): Promise<void> {
    if (abortRunning) await this.aborts.broadcast(executionId);
    const out = new StepEvents(this.sink, executionId, `control.${jobId}`, 0);
    await this.announce(out, await this.store.advance(executionId, `control.${jobId}`));
  }

  private async work(executionId: string, stored: StoredNode, attempt: number, signal: AbortSignal): Promise<unknown> {
    // Root nodes get the execution's inputs; the others their predecessors' outputs.
    const inputs = stored.preds.length > 0 ? await this.store.outputs(executionId, stored.preds) : await this.store.executionInputs(executionId);
    const kind = nodeKind(stored.node);
    if (kind === 'map') return mapItems(stored.node, inputs);
    const gated = kind === 'tool' && (await this.store.nodes(executionId, stored.preds)).some((p) => nodeKind(p.node) === 'human_gate');
    return this.runner.run({ executionId, node: stored.node, inputs, attempt, gated, signal });
  }

  private async openGate(out: StepEvents, node: DagNodeDef): Promise<string> {
    const config = node.config ?? {};
    await this.domain.openGate(out.executionId, node.id);
    await out.node(node.id, 'waiting');
    await out.publish({
      type: 'human_gate_waiting',
      payload: {
        nodeId: node.id,
        prompt: typeof config.prompt === 'string' ? config.prompt : `Approve ${node.label ?? node.id}?`,
        options: Array.isArray(config.options) ? (config.options as string[]) : ['approve', 'reject', 'modify'],
      },
    });
    await this.announce(out, await this.store.park(out.executionId, `node.${node.id}`, node.id));
    return 'waiting';
  }

  private async completeNode(out: StepEvents, node: DagNodeDef, output: unknown, metrics: Record<string, number>, token: string): Promise<string> {
    const { executionId } = out;
    if (nodeKind(node) === 'map') await this.expand(out, node, output);
    const cost = nodeCost(node, output);
    await out.node(node.id, 'completed', { output, metrics: { ...metrics, ...(cost > 0 ? { costUsd: cost } : {}) } });
    for (const to of await this.store.successors(executionId, node.id)) await out.publish({ type: 'edge_active', payload: { from: node.id, to } });
    await this.announce(out, await this.store.settle(executionId, token, node.id, 'completed', node.onFailure ?? 'fail_execution', cost), node.id);
    return 'completed';
  }

  private async failNode(out: StepEvents, node: DagNodeDef, error: string, token: string, metrics?: Record<string, number>): Promise<string> {
    await out.node(node.id, 'failed', { error, ...(metrics ? { metrics } : {}) });
    await out.publish({ type: 'error', payload: { nodeId: node.id, code: 'NODE_FAILED', message: `node ${node.id} failed: ${error}` } });
    await this.announce(out, await this.store.settle(out.executionId, token, node.id, 'failed', node.onFailure ?? 'fail_execution'), node.id);
    return 'failed';
  }

  private async cancelNode(out: StepEvents, node: DagNodeDef): Promise<string> {
    await out.node(node.id, 'cancelled');
    await this.announce(out, await this.store.settle(out.executionId, `node.${node.id}`, node.id, 'cancelled', 'fail_execution'));
    return 'cancelled';
  }

  /** A map node adds one node per item, each feeding the map node's successors (announced before any runs). */
  private async expand(out: StepEvents, node: DagNodeDef, output: unknown): Promise<void> {
    const items = Array.isArray(output) ? output : [];
    const template = (node.config?.template ?? {}) as Omit<DagNodeDef, 'id'>;
    const fed = await this.store.successors(out.executionId, node.id);
    const added: DagNodeDef[] = items.map((item: unknown, i) => ({ ...template, id: `${node.id}.${i}`, config: { ...template.config, item } }));
    const step = await this.store.expand(out.executionId, `expand.${node.id}`, node.id, added);
    if (step.stale || added.length === 0) return;
    const addEdges = added.flatMap((n) => [{ from: node.id, to: n.id }, ...fed.map((to) => ({ from: n.id, to }))]);
    await out.publish({ type: 'dag_mutated', payload: { mutation: { addNodes: added, addEdges } } });
  }

  /** Publishes what a step decided, queues the nodes it handed out, and ends the execution if it did. */
  private async announce(out: StepEvents, step: EngineStep, nodeId?: string): Promise<void> {
    if (step.stale) return;
    for (const id of step.skipped) await out.node(id, 'skipped');
    for (const id of step.cancelled) await out.node(id, 'cancelled');
    if (step.spent !== undefined) {
      const budget = step.budget ?? 0;
      await out.publish({ type: 'cost_update', payload: { spent: step.spent, budget, remaining: budget - step.spent } });
    }
    if (step.budgetExceeded) {
      await out.publish({
        type: 'error',
        payload: { ...(nodeId !== undefined ? { nodeId } : {}), code: 'BUDGET_EXCEEDED', message: `spent ${step.spent} USD of a ${step.budget} USD budget` },
      });
    }
    if (step.failing) await this.aborts.broadcast(out.executionId);
    // `ready` means handed to the workers: announced by the step that hands the node out, before its job exists.
    for (const id of step.dispatch) await out.node(id, 'ready');
    await this.enqueue(out.executionId, step.dispatch);
    if (step.finish) await this.complete(out.executionId, step.finish);
  }

  private async enqueue(executionId: string, nodeIds: string[]): Promise<void> {
    if (nodeIds.length === 0) return;
    const stored = await this.store.nodes(executionId, nodeIds);
    await this.nodeQueue.addBulk(
      stored.map(({ node }) => ({
        name: node.kind ?? 'task',
        data: { executionId, nodeId: node.id },
        opts: {
          jobId: dagNodeJobId(executionId, node.id),
          attempts: node.retry?.attempts ?? 1,
          backoff: { type: 'exponential', delay: node.retry?.backoffMs ?? 0 },
          ...KEEP_NODE_JOBS,
        },
      })),
    );
  }

  /** The one end: every completed node's output as the results. */
  private async complete(executionId: string, status: 'completed' | 'failed' | 'cancelled'): Promise<void> {
    const statuses = await this.store.statuses(executionId);
    const completed = Object.keys(statuses).filter((id) => statuses[id] === 'completed');
    const results = await this.store.outputs(executionId, completed);
    await this.sink.dag(executionId, { type: 'execution_complete', payload: { status, results } }, { idempotencyKey: `execution-complete.${executionId}` });
  }
}
