import type { Envelope } from '../envelope';
import type { DagEdgeDef, DagEventPayloads, DagNodeDef, ExecutionControlStatus, ExecutionEndStatus, NodeStatus } from '../events/dag';
import type { StreamError } from './bot.reducer';
import { capped, withEntry, without } from './records';

/**
 * The state of a DAG execution stream: definition, every node's status, active edges,
 * cost, pending human gates and the execution's status (PROTOCOL.md §5). Plain JSON.
 */
export interface DagState {
  executionId?: string;
  dagId?: string;
  status: 'pending' | ExecutionControlStatus | ExecutionEndStatus;
  /** Nodes in definition order. */
  nodes: DagNodeState[];
  edges: DagEdgeDef[];
  /** Edges that carried control, as `from->to` keys in activation order. */
  activeEdges: string[];
  budgetUsd?: number;
  cost?: { spent: number; budget: number; remaining: number };
  pendingGates: Record<string, PendingGate>;
  results?: unknown;
  /** Most recent errors, oldest first, at most {@link DAG_RECENT_ERRORS}. */
  errors: StreamError[];
}

export interface DagNodeState extends DagNodeDef {
  status: NodeStatus;
  output?: unknown;
  metrics?: Record<string, number>;
  error?: string;
}

export interface PendingGate {
  nodeId: string;
  prompt: string;
  options?: string[];
}

export const DAG_RECENT_ERRORS = 20;

export function initialDagState(): DagState {
  return { status: 'pending', nodes: [], edges: [], activeEdges: [], pendingGates: {}, errors: [] };
}

export function edgeKey(edge: DagEdgeDef): string {
  return `${edge.from}->${edge.to}`;
}

type Handler<K extends keyof DagEventPayloads> = (state: DagState, payload: DagEventPayloads[K], ts: number) => DagState;

const handlers: { [K in keyof DagEventPayloads]: Handler<K> } = {
  execution_started: (s, p) => {
    const next: DagState = {
      ...s,
      executionId: p.executionId,
      // A steering change that reached the stream first (a pause landing as the execution
      // started) is the newer status.
      status: s.status === 'pending' ? 'running' : s.status,
      nodes: p.nodes.map((node) => ({ ...node, status: 'pending' })),
      edges: [...p.edges],
      activeEdges: [],
      pendingGates: {},
    };
    if (p.dagId !== undefined) next.dagId = p.dagId;
    if (p.budgetUsd !== undefined) next.budgetUsd = p.budgetUsd;
    return next;
  },
  node_state: (s, p) => {
    const exists = s.nodes.some((n) => n.id === p.nodeId);
    const update = (node: DagNodeState): DagNodeState => {
      const next: DagNodeState = { ...node, status: p.status };
      if (p.output !== undefined) next.output = p.output;
      if (p.metrics !== undefined) next.metrics = p.metrics;
      if (p.error !== undefined) next.error = p.error;
      return next;
    };
    const nodes = exists ? s.nodes.map((n) => (n.id === p.nodeId ? update(n) : n)) : [...s.nodes, update({ id: p.nodeId, status: p.status })];
    return { ...s, nodes };
  },
  edge_active: (s, p) => {
    const key = edgeKey(p);
    return s.activeEdges.includes(key) ? s : { ...s, activeEdges: [...s.activeEdges, key] };
  },
  dag_mutated: (s, { mutation }) => {
    const removedNodes = new Set(mutation.removeNodes ?? []);
    const removedEdges = new Set((mutation.removeEdges ?? []).map(edgeKey));
    const keepEdge = (e: DagEdgeDef) => !removedEdges.has(edgeKey(e)) && !removedNodes.has(e.from) && !removedNodes.has(e.to);
    const known = new Set(s.nodes.map((n) => n.id));
    const added = (mutation.addNodes ?? []).filter((n) => !known.has(n.id) && !removedNodes.has(n.id));
    const edges = [...s.edges.filter(keepEdge), ...(mutation.addEdges ?? []).filter(keepEdge)];
    const edgeKeys = new Set(edges.map(edgeKey));
    let pendingGates = s.pendingGates;
    for (const nodeId of removedNodes) pendingGates = without(pendingGates, nodeId);
    return {
      ...s,
      nodes: [...s.nodes.filter((n) => !removedNodes.has(n.id)), ...added.map((n) => ({ ...n, status: 'pending' as const }))],
      edges: dedupeEdges(edges),
      activeEdges: s.activeEdges.filter((key) => edgeKeys.has(key)),
      pendingGates,
    };
  },
  cost_update: (s, p) => ({ ...s, cost: { spent: p.spent, budget: p.budget, remaining: p.remaining } }),
  human_gate_waiting: (s, p) => {
    const gate: PendingGate = { nodeId: p.nodeId, prompt: p.prompt };
    if (p.options !== undefined) gate.options = [...p.options];
    return { ...s, pendingGates: withEntry(s.pendingGates, p.nodeId, gate) };
  },
  human_gate_resolved: (s, p) => ({ ...s, pendingGates: without(s.pendingGates, p.nodeId) }),
  execution_state: (s, p) => ({ ...s, status: p.status }),
  execution_complete: (s, p) => ({ ...s, status: p.status, results: p.results, pendingGates: {} }),
  error: (s, p, ts) => {
    const error: StreamError = { code: p.code, message: p.message, at: ts };
    if (p.nodeId !== undefined) error.nodeId = p.nodeId;
    return { ...s, errors: capped([...s.errors, error], DAG_RECENT_ERRORS) };
  },
};

/** Folds one DAG-stream envelope into the state; unknown event types leave it unchanged. */
export function foldDag(state: DagState, event: Pick<Envelope, 'type' | 'payload' | 'ts'>): DagState {
  const handler = (handlers as Record<string, Handler<keyof DagEventPayloads> | undefined>)[event.type];
  if (!handler) return state;
  return handler(state, event.payload as never, event.ts);
}

function dedupeEdges(edges: DagEdgeDef[]): DagEdgeDef[] {
  const seen = new Set<string>();
  return edges.filter((e) => {
    const key = edgeKey(e);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
