import fc from 'fast-check';
import type { BotEvent } from '../events/bot';
import type { DagEvent } from '../events/dag';
import { checkJsonShape } from '../json-shape';

/**
 * fast-check generators of schema-valid stream events, drawn from small id pools so that
 * events refer to each other (a `message` for a run that started, a gate that resolves).
 * Used by the reducer property tests and by client-store tests.
 */
const pick = (...values: string[]) => fc.constantFrom(...values);
const runId = pick('r1', 'r2', 'r3', '__proto__');
const sessionId = pick('s1', 's2');
const messageId = pick('m1', 'm2', 'm3');
const smallText = fc.string({ maxLength: 8 });
const amount = fc.integer({ min: 0, max: 1000 });
// fast-check likes `__proto__` and `constructor` as keys; the contract refuses them (json-shape.ts).
const json = fc
  .jsonValue({ maxDepth: 2 })
  .map((v) => JSON.parse(JSON.stringify(v)) as unknown)
  .filter((v) => checkJsonShape(v).length === 0);

export const botEventArb: fc.Arbitrary<BotEvent> = fc.oneof(
  fc.record({ sessionId, runId, model: pick('echo', 'gpt') }).map((payload) => ({ type: 'run_started' as const, payload })),
  fc.record({ sessionId, runId, content: smallText }).map((payload) => ({ type: 'thinking' as const, payload })),
  fc
    .record(
      {
        sessionId,
        runId,
        messageId,
        role: fc.constantFrom('user', 'assistant', 'system', 'tool' as const),
        content: smallText,
        delta: fc.boolean(),
        replyToId: messageId,
      },
      { requiredKeys: ['sessionId', 'runId', 'messageId', 'role', 'content', 'delta'] },
    )
    .map((payload) => ({ type: 'message' as const, payload })),
  fc
    .record({ sessionId, runId, toolCallId: pick('t1', 't2'), tool: pick('search', 'shell'), args: json })
    .map((payload) => ({ type: 'tool_start' as const, payload })),
  fc
    .record({ sessionId, runId, toolCallId: pick('t1', 't2'), result: json, success: fc.boolean(), durationMs: amount })
    .map((payload) => ({ type: 'tool_end' as const, payload })),
  fc
    .record({
      sessionId,
      runId,
      approvalId: pick('a1', 'a2'),
      tool: pick('shell'),
      args: json,
      riskLevel: fc.constantFrom('low', 'medium', 'high', 'critical' as const),
      expiresAt: amount,
    })
    .map((payload) => ({ type: 'approval_needed' as const, payload })),
  fc
    .record({ sessionId, approvalId: pick('a1', 'a2'), approved: fc.boolean(), resolvedBy: pick('u1') })
    .map((payload) => ({ type: 'approval_resolved' as const, payload })),
  fc.record({ sessionId, runId, planId: pick('p1', 'p2'), plan: smallText }).map((payload) => ({ type: 'plan_created' as const, payload })),
  fc
    .record({ sessionId, planId: pick('p1', 'p2'), response: fc.constantFrom('approve', 'reject', 'edit' as const), resolvedBy: pick('u1') })
    .map((payload) => ({ type: 'plan_resolved' as const, payload })),
  fc
    .record({ sessionId, runId, promptTokens: amount, completionTokens: amount, totalTokens: amount, totalCost: amount })
    .map((payload) => ({ type: 'usage' as const, payload })),
  fc
    .record({ sessionId, runId, code: pick('E1', 'E2'), message: smallText }, { requiredKeys: ['sessionId', 'code', 'message'] })
    .map((payload) => ({ type: 'error' as const, payload })),
  fc
    .record(
      { sessionId, runId, replyToId: messageId, status: fc.constantFrom('completed', 'cancelled', 'failed' as const) },
      { requiredKeys: ['sessionId', 'runId', 'status'] },
    )
    .map((payload) => ({ type: 'done' as const, payload })),
  fc.record({ sessionId, title: smallText }).map((payload) => ({ type: 'session_created' as const, payload })),
  fc
    .record({ sessionId, platform: pick('slack'), chatId: pick('c1'), role: fc.constantFrom('user', 'assistant' as const), content: smallText })
    .map((payload) => ({ type: 'platform_message' as const, payload })),
);

const nodeId = pick('n1', 'n2', 'n3', 'n4');
const edge = fc.record({ from: nodeId, to: nodeId });
const nodeDef = fc.record({ id: nodeId, kind: pick('task', 'human'), label: smallText }, { requiredKeys: ['id'] });

export const dagEventArb: fc.Arbitrary<DagEvent> = fc.oneof(
  fc
    .record(
      {
        executionId: pick('e1'),
        dagId: pick('d1'),
        nodes: fc.uniqueArray(nodeDef, { selector: (n) => n.id, maxLength: 4 }),
        edges: fc.array(edge, { maxLength: 4 }),
        budgetUsd: amount,
      },
      { requiredKeys: ['executionId', 'nodes', 'edges'] },
    )
    .map((payload) => ({ type: 'execution_started' as const, payload })),
  fc
    .record(
      {
        nodeId,
        status: fc.constantFrom('pending', 'ready', 'running', 'waiting', 'completed', 'failed', 'skipped', 'cancelled' as const),
        output: json,
        metrics: fc.dictionary(pick('ms', 'tokens'), amount),
        error: smallText,
      },
      { requiredKeys: ['nodeId', 'status'] },
    )
    .map((payload) => ({ type: 'node_state' as const, payload })),
  edge.map((payload) => ({ type: 'edge_active' as const, payload })),
  fc
    .record(
      {
        addNodes: fc.array(nodeDef, { maxLength: 2 }),
        addEdges: fc.array(edge, { maxLength: 2 }),
        removeNodes: fc.array(nodeId, { maxLength: 2 }),
        removeEdges: fc.array(edge, { maxLength: 2 }),
      },
      { requiredKeys: [] },
    )
    .map((mutation) => ({ type: 'dag_mutated' as const, payload: { mutation } })),
  fc.record({ spent: amount, budget: amount, remaining: amount }).map((payload) => ({ type: 'cost_update' as const, payload })),
  fc
    .record({ nodeId, prompt: smallText, options: fc.array(smallText, { maxLength: 3 }) }, { requiredKeys: ['nodeId', 'prompt'] })
    .map((payload) => ({ type: 'human_gate_waiting' as const, payload })),
  fc
    .record({ nodeId, decision: fc.constantFrom('approve', 'reject', 'modify' as const), resolvedBy: pick('u1') })
    .map((payload) => ({ type: 'human_gate_resolved' as const, payload })),
  fc.record({ status: fc.constantFrom('running', 'paused', 'cancelling' as const) }).map((payload) => ({ type: 'execution_state' as const, payload })),
  fc
    .record({ status: fc.constantFrom('completed', 'failed', 'cancelled' as const), results: json })
    .map((payload) => ({ type: 'execution_complete' as const, payload })),
  fc.record({ nodeId, code: pick('E1'), message: smallText }, { requiredKeys: ['code', 'message'] }).map((payload) => ({ type: 'error' as const, payload })),
);

/** Gives drafts the `ts` a reducer reads, increasing like a real stream's. */
export function withTimestamps<T extends { type: string; payload: unknown }>(events: T[]): Array<T & { ts: number }> {
  return events.map((event, i) => ({ ...event, ts: 1_700_000_000_000 + i }));
}
