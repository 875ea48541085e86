import {
  type DagEvent,
  type DagMutation,
  type DagState,
  type ErrorBody,
  type ExecutionControlStatus,
  type ExecutionEndStatus,
  type HumanDecision,
  type NodeStatus,
} from '@app/protocol';
import { type Fields, oneOf, optionalString, requiredString, unknownAction } from './client-frames';
import type { ContractCommand } from './compat-link';

/**
 * The DAG dashboard's socket (PROTOCOL.md §13, `/api/dags/:executionId/stream`): flat JSON
 * frames `{ type, ...fields }` with snake_case ids, as its `useDAGStream` hook reads them.
 * Fields the contract adds (`error`, `code`, `status`) are additions the hook ignores.
 */
export type DagDashboardFrame =
  | { type: 'node_state'; node_id: string; status: NodeStatus; output?: unknown; metrics?: Record<string, number>; error?: string }
  | { type: 'edge_active'; from: string; to: string }
  | { type: 'dag_mutated'; mutation: DagMutation }
  | { type: 'cost_update'; spent: number; budget: number; remaining: number }
  | { type: 'human_gate_waiting'; node_id: string; presentation: { prompt: string; options?: string[] } }
  | { type: 'execution_state'; status: ExecutionControlStatus }
  | { type: 'execution_complete'; status: ExecutionEndStatus; results: unknown }
  | { type: 'error'; code: string; message: string; node_id?: string };

export const DAG_CLIENT_TYPES = ['human_decision', 'pause_execution', 'resume_execution', 'cancel_execution'] as const;
const DECISIONS: readonly HumanDecision[] = ['approve', 'reject', 'modify'];

/** The frames one DAG-stream event becomes (none for `human_gate_resolved`: the node's `node_state` tells the outcome). */
export function dagDashboardFrames(event: DagEvent): DagDashboardFrame[] {
  switch (event.type) {
    case 'execution_started':
      // The dashboard draws its graph from node states: every node starts pending.
      return event.payload.nodes.map((node) => ({ type: 'node_state', node_id: node.id, status: 'pending' }));
    case 'node_state':
      return [nodeState(event.payload.nodeId, event.payload)];
    case 'edge_active':
      return [{ type: 'edge_active', from: event.payload.from, to: event.payload.to }];
    case 'dag_mutated':
      return [{ type: 'dag_mutated', mutation: event.payload.mutation }];
    case 'cost_update':
      return [{ type: 'cost_update', spent: event.payload.spent, budget: event.payload.budget, remaining: event.payload.remaining }];
    case 'human_gate_waiting':
      return [gateWaiting(event.payload.nodeId, event.payload.prompt, event.payload.options)];
    case 'execution_state':
      return [{ type: 'execution_state', status: event.payload.status }];
    case 'execution_complete':
      return [{ type: 'execution_complete', status: event.payload.status, results: event.payload.results }];
    case 'error':
      return [dagErrorFrame({ code: event.payload.code, message: event.payload.message }, event.payload.nodeId)];
    default:
      return [];
  }
}

/**
 * What a dashboard gets first on every (re)connect, from the subscribe's snapshot: one
 * `node_state` per node with its current status (and output, metrics, error), a
 * `cost_update`, then what else is current — the edges that carried control, the gates
 * waiting for a decision, a paused or cancelling execution, the end of a finished one.
 */
export function dagResyncFrames(state: DagState): DagDashboardFrame[] {
  const frames: DagDashboardFrame[] = state.nodes.map((node) => nodeState(node.id, node));
  const budget = state.cost?.budget ?? state.budgetUsd ?? 0;
  const spent = state.cost?.spent ?? 0;
  frames.push({ type: 'cost_update', spent, budget, remaining: state.cost?.remaining ?? budget - spent });
  for (const key of state.activeEdges) {
    const [from, to] = key.split('->');
    frames.push({ type: 'edge_active', from, to });
  }
  for (const gate of Object.values(state.pendingGates)) frames.push(gateWaiting(gate.nodeId, gate.prompt, gate.options));
  if (state.status === 'paused' || state.status === 'cancelling') frames.push({ type: 'execution_state', status: state.status });
  if (state.status === 'completed' || state.status === 'failed' || state.status === 'cancelled') {
    frames.push({ type: 'execution_complete', status: state.status, results: state.results ?? {} });
  }
  return frames;
}

export function dagErrorFrame(error: ErrorBody | { code: string; message: string }, nodeId?: string): DagDashboardFrame {
  return { type: 'error', code: error.code, message: error.message, ...(nodeId !== undefined ? { node_id: nodeId } : {}) };
}

/** A dashboard frame as the contract command it asks for, on the socket's execution. */
export function dagCommandOf(fields: Fields, executionId: string): ContractCommand {
  switch (fields.type) {
    case 'human_decision': {
      const feedback = optionalString(fields, 'feedback');
      return {
        type: 'human_decision',
        payload: {
          executionId,
          nodeId: requiredString(fields, 'node_id'),
          decision: oneOf(fields, 'decision', DECISIONS),
          ...(feedback !== undefined ? { feedback } : {}),
        },
      };
    }
    case 'pause_execution':
    case 'resume_execution':
    case 'cancel_execution':
      return { type: fields.type, payload: { executionId } };
    default:
      throw unknownAction('type', fields.type, DAG_CLIENT_TYPES);
  }
}

function nodeState(nodeId: string, node: { status: NodeStatus; output?: unknown; metrics?: Record<string, number>; error?: string }): DagDashboardFrame {
  return {
    type: 'node_state',
    node_id: nodeId,
    status: node.status,
    ...(node.output !== undefined ? { output: node.output } : {}),
    ...(node.metrics !== undefined ? { metrics: node.metrics } : {}),
    ...(node.error !== undefined ? { error: node.error } : {}),
  };
}

function gateWaiting(nodeId: string, prompt: string, options: string[] | undefined): DagDashboardFrame {
  return { type: 'human_gate_waiting', node_id: nodeId, presentation: { prompt, ...(options !== undefined ? { options } : {}) } };
}
