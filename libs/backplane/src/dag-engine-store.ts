import type { DagNodeDef, ExecutionEndStatus, NodeFailurePolicy } from '@app/protocol';
import { domainKeys } from './keys';
import { type RedisClient, runScript, type ScriptName } from './scripts';

/** What one orchestration step decided (see scripts/dag-engine.lua.ts). */
export interface EngineStep {
  /** Nodes that became ready (announce them before their jobs are queued). */
  ready: string[];
  skipped: string[];
  cancelled: string[];
  /** Nodes handed out now: queue one job each. */
  dispatch: string[];
  /** Set by the one step that ended the execution. */
  finish?: ExecutionEndStatus;
  /** The execution's spend after this step's cost. */
  spent?: number;
  budget?: number;
  /** This step turned the execution failing: running nodes are to be aborted. */
  failing?: boolean;
  budgetExceeded?: boolean;
  /** The node had settled already (a duplicate job, or a step after a stop): nothing changed. */
  stale?: boolean;
}

export type NodeStart = 'run' | 'abort' | 'held' | 'stale';

/** A node as the engine keeps it: its definition and the nodes whose outputs are its inputs. */
export interface StoredNode {
  node: DagNodeDef;
  preds: string[];
}

export type NodeOutcome = { ok: true; output: unknown } | { ok: false; error: string };

const TTL_S = 7 * 24 * 3600;
/** The field of the nodes hash holding the execution's `inputs` (no node id can hold a `$`). */
const EXECUTION_INPUTS = '$inputs';

/** The DAG engine's state of executions in Redis; every change of it goes through one Lua step. */
export class DagEngineStore {
  constructor(private readonly redis: RedisClient) {}

  /** Lays the execution out once (a retry answers as the first call did). */
  async init(
    executionId: string,
    nodes: StoredNode[],
    succ: Map<string, string[]>,
    options: { limit: number; budgetUsd?: number; inputs?: Record<string, unknown> },
  ): Promise<EngineStep> {
    const { limit, budgetUsd, inputs = {} } = options;
    const defs = this.keys(executionId);
    await this.redis
      .multi()
      .hset(defs.nodes, { ...Object.fromEntries(nodes.map((n) => [n.node.id, JSON.stringify(n)])), [EXECUTION_INPUTS]: JSON.stringify(inputs) })
      .expire(defs.nodes, TTL_S)
      .exec();
    const args = nodes.flatMap(({ node, preds }) => [node.id, (succ.get(node.id) ?? []).join(','), preds.length]);
    return this.step('rtDagInitV1', executionId, ['init', limit, budgetUsd ?? '', TTL_S, ...args]);
  }

  async start(executionId: string, nodeId: string): Promise<NodeStart> {
    const k = this.keys(executionId);
    return (await runScript(this.redis, 'rtDagStartV2', [k.record, k.engine, k.ready], [nodeId])) as NodeStart;
  }

  settle(
    executionId: string,
    token: string,
    nodeId: string,
    outcome: 'completed' | 'failed' | 'cancelled',
    policy: NodeFailurePolicy,
    costUsd = 0,
  ): Promise<EngineStep> {
    return this.step('rtDagSettleV1', executionId, [token, nodeId, outcome, policy, costUsd]);
  }

  park(executionId: string, token: string, nodeId: string): Promise<EngineStep> {
    return this.step('rtDagParkV1', executionId, [token, nodeId]);
  }

  /** After a steering change: sweep (stopping), hand out (running), end (nothing left). */
  advance(executionId: string, token: string): Promise<EngineStep> {
    return this.step('rtDagStepV1', executionId, [token]);
  }

  /** Adds a map node's items (their definitions first, so a job never finds its node missing). */
  async expand(executionId: string, token: string, mapNodeId: string, items: DagNodeDef[]): Promise<EngineStep> {
    const k = this.keys(executionId);
    if (items.length > 0) {
      // The map node's successors take the items' outputs as inputs too (a retry adds none twice).
      const itemIds = new Set(items.map((i) => i.id));
      const fedNodes = await this.nodes(
        executionId,
        (await this.successors(executionId, mapNodeId)).filter((id) => !itemIds.has(id)),
      );
      const fed = fedNodes.map(({ node, preds }) => [node.id, JSON.stringify({ node, preds: [...new Set([...preds, ...itemIds])] })]);
      await this.redis.hset(
        k.nodes,
        Object.fromEntries([...items.map((node) => [node.id, JSON.stringify({ node, preds: [mapNodeId] } satisfies StoredNode)]), ...fed]),
      );
    }
    return this.step('rtDagExpandV1', executionId, [token, mapNodeId, ...items.map((n) => n.id)]);
  }

  /** A node's successors now (a map node's include its items once it expanded). */
  async successors(executionId: string, nodeId: string): Promise<string[]> {
    const csv = await this.redis.hget(this.keys(executionId).engine, `s:${nodeId}`);
    return csv ? csv.split(',') : [];
  }

  async nodeStatus(executionId: string, nodeId: string): Promise<string | null> {
    return this.redis.hget(this.keys(executionId).engine, `n:${nodeId}`);
  }

  async nodes(executionId: string, nodeIds: string[]): Promise<StoredNode[]> {
    if (nodeIds.length === 0) return [];
    const raw = await this.redis.hmget(this.keys(executionId).nodes, ...nodeIds);
    return raw.map((value, i) => {
      if (value === null || value === undefined) throw new Error(`node ${nodeIds[i]} of ${executionId} has no stored definition`);
      return JSON.parse(value) as StoredNode;
    });
  }

  async node(executionId: string, nodeId: string): Promise<StoredNode | null> {
    const raw = await this.redis.hget(this.keys(executionId).nodes, nodeId);
    return raw ? (JSON.parse(raw) as StoredNode) : null;
  }

  /** Records a node's outcome for an attempt unless one is recorded; returns the one that stands. */
  async recordOutcome(executionId: string, nodeId: string, attempt: number, outcome: NodeOutcome): Promise<NodeOutcome> {
    const key = this.keys(executionId).outcomes;
    const field = outcome.ok ? `out:${nodeId}` : `err:${nodeId}:${attempt}`;
    const [[, set], [, stored]] = ((await this.redis
      .multi()
      .hsetnx(key, field, JSON.stringify(outcome.ok ? (outcome.output ?? null) : outcome.error))
      .hget(key, field)
      .expire(key, TTL_S)
      .exec()) ?? []) as Array<[Error | null, unknown]>;
    if (set === 1) return outcome;
    return outcome.ok ? { ok: true, output: JSON.parse(stored as string) as unknown } : { ok: false, error: JSON.parse(stored as string) as string };
  }

  /** What a node's earlier run of this attempt decided, if it got that far. */
  async recordedOutcome(executionId: string, nodeId: string, attempt: number): Promise<NodeOutcome | null> {
    const [output, error] = await this.redis.hmget(this.keys(executionId).outcomes, `out:${nodeId}`, `err:${nodeId}:${attempt}`);
    if (output !== null) return { ok: true, output: JSON.parse(output) as unknown };
    if (error !== null) return { ok: false, error: JSON.parse(error) as string };
    return null;
  }

  /** The execution's `inputs` (start_execution): what its root nodes get as inputs. */
  async executionInputs(executionId: string): Promise<Record<string, unknown>> {
    const raw = await this.redis.hget(this.keys(executionId).nodes, EXECUTION_INPUTS);
    return raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
  }

  /** Outputs of completed nodes, by id (nodes without one are left out). */
  async outputs(executionId: string, nodeIds: string[]): Promise<Record<string, unknown>> {
    if (nodeIds.length === 0) return {};
    const raw = await this.redis.hmget(this.keys(executionId).outcomes, ...nodeIds.map((id) => `out:${id}`));
    const out: Record<string, unknown> = {};
    nodeIds.forEach((id, i) => {
      const value = raw[i];
      if (value !== null && value !== undefined) out[id] = JSON.parse(value) as unknown;
    });
    return out;
  }

  /** Node ids and statuses as the engine holds them (tests, the end of an execution). */
  async statuses(executionId: string): Promise<Record<string, string>> {
    const all = await this.redis.hgetall(this.keys(executionId).engine);
    return Object.fromEntries(
      Object.entries(all)
        .filter(([field]) => field.startsWith('n:'))
        .map(([field, value]) => [field.slice(2), value]),
    );
  }

  private async step(script: ScriptName, executionId: string, args: Array<string | number>): Promise<EngineStep> {
    const k = this.keys(executionId);
    const raw = JSON.parse((await runScript(this.redis, script, [k.record, k.engine, k.ready], args)) as string) as Partial<EngineStep>;
    const list = (value: unknown) => (Array.isArray(value) ? (value as string[]) : []);
    return { ...raw, ready: list(raw.ready), skipped: list(raw.skipped), cancelled: list(raw.cancelled), dispatch: list(raw.dispatch) };
  }

  private keys(executionId: string) {
    return {
      record: domainKeys.execution(executionId),
      engine: domainKeys.executionEngine(executionId),
      ready: domainKeys.executionReady(executionId),
      nodes: domainKeys.executionNodes(executionId),
      outcomes: domainKeys.executionOutcomes(executionId),
    };
  }
}
