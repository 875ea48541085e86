import type { Envelope } from '../envelope';

/** DAG stream events (PROTOCOL.md §4). */
export type NodeStatus = 'pending' | 'ready' | 'running' | 'waiting' | 'completed' | 'failed' | 'skipped' | 'cancelled';
export type ExecutionControlStatus = 'running' | 'paused' | 'cancelling';
export type ExecutionEndStatus = 'completed' | 'failed' | 'cancelled';
export type HumanDecision = 'approve' | 'reject' | 'modify';

/** What happens when a node fails for good (PROTOCOL.md §10). */
export const NODE_FAILURE_POLICIES = ['fail_execution', 'skip_dependents'] as const;
export type NodeFailurePolicy = (typeof NODE_FAILURE_POLICIES)[number];

/** `attempts` counts every try, the first included; the n-th retry waits `backoffMs × 2^(n-1)`. */
export interface NodeRetryPolicy {
  attempts: number;
  backoffMs?: number;
}

/** One node of a DAG definition. `kind` selects what runs it; `config` is the kind's input. */
export interface DagNodeDef {
  id: string;
  kind?: string;
  label?: string;
  config?: Record<string, unknown>;
  retry?: NodeRetryPolicy;
  timeoutMs?: number;
  onFailure?: NodeFailurePolicy;
}

export interface DagEdgeDef {
  from: string;
  to: string;
}

export interface DagDefinition {
  nodes: DagNodeDef[];
  edges: DagEdgeDef[];
  /** Nodes of this execution running at once (an addition to §10; the engine's default when absent). */
  maxConcurrency?: number;
}

export interface DagMutation {
  addNodes?: DagNodeDef[];
  addEdges?: DagEdgeDef[];
  removeNodes?: string[];
  removeEdges?: DagEdgeDef[];
}

export interface DagEventPayloads {
  execution_started: {
    executionId: string;
    dagId?: string;
    nodes: DagNodeDef[];
    edges: DagEdgeDef[];
    budgetUsd?: number;
  };
  node_state: {
    nodeId: string;
    status: NodeStatus;
    output?: unknown;
    metrics?: Record<string, number>;
    error?: string;
  };
  edge_active: { from: string; to: string };
  dag_mutated: { mutation: DagMutation };
  cost_update: { spent: number; budget: number; remaining: number };
  human_gate_waiting: { nodeId: string; prompt: string; options?: string[] };
  human_gate_resolved: { nodeId: string; decision: HumanDecision; resolvedBy: string };
  execution_state: { status: ExecutionControlStatus };
  execution_complete: { status: ExecutionEndStatus; results: unknown };
  error: { nodeId?: string; code: string; message: string };
}

export type DagEventType = keyof DagEventPayloads;

export type DagEvent = {
  [K in DagEventType]: { type: K; payload: DagEventPayloads[K] };
}[DagEventType];

export type DagEnvelope = {
  [K in DagEventType]: Envelope<K, DagEventPayloads[K]>;
}[DagEventType];

export const DAG_EVENT_TYPES: readonly DagEventType[] = [
  'execution_started',
  'node_state',
  'edge_active',
  'dag_mutated',
  'cost_update',
  'human_gate_waiting',
  'human_gate_resolved',
  'execution_state',
  'execution_complete',
  'error',
];
