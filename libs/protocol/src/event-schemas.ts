import type { FieldViolation } from './errors';
import { isEventTypeName } from './envelope';
import { checkJsonShape, joinPath } from './json-shape';
import type { BotEventPayloads } from './events/bot';
import type { DagEventPayloads } from './events/dag';
import { ID_PATTERN, type StreamKind } from './streams';

/**
 * Schemas of the event payloads of PROTOCOL.md §4, checked where events enter the system
 * from outside (the HTTP publish API) so that no reducer ever folds a malformed event.
 * Extra fields are allowed: new optional fields are additions to the contract.
 */
type Check = (value: unknown, field: string, out: FieldViolation[]) => void;
interface Field {
  check: Check;
  optional: boolean;
}
type Shape<T> = { [K in keyof T]-?: Field };

const field = (check: Check): Field => ({ check, optional: false });
const optional = (f: Field): Field => ({ ...f, optional: true });
const fail = (out: FieldViolation[], field: string, constraint: string, message: string) => out.push({ field, constraint, message: `${field} ${message}` });

const str = field((v, f, out) => typeof v !== 'string' && fail(out, f, 'isString', 'must be a string'));
const id = field((v, f, out) => !(typeof v === 'string' && ID_PATTERN.test(v)) && fail(out, f, 'matches', 'must match [A-Za-z0-9_.-]{1,128}'));
const bool = field((v, f, out) => typeof v !== 'boolean' && fail(out, f, 'isBoolean', 'must be a boolean'));
const num = field((v, f, out) => !(typeof v === 'number' && Number.isFinite(v)) && fail(out, f, 'isNumber', 'must be a finite number'));
const nonNegative = field((v, f, out) => !(typeof v === 'number' && Number.isFinite(v) && v >= 0) && fail(out, f, 'min', 'must be a number >= 0'));
const any = field(() => undefined);
const oneOf = (...values: string[]) => field((v, f, out) => !values.includes(v as string) && fail(out, f, 'isIn', `must be one of ${values.join(', ')}`));
const arrayOf = (item: Field) =>
  field((v, f, out) => {
    if (!Array.isArray(v)) return fail(out, f, 'isArray', 'must be an array');
    v.forEach((element, i) => item.check(element, `${f}.${i}`, out));
  });
const numberRecord = field((v, f, out) => {
  if (!isObject(v)) return fail(out, f, 'isObject', 'must be an object');
  for (const [k, n] of Object.entries(v)) num.check(n, joinPath(f, k), out);
});
const object = <T>(shape: Shape<T>) =>
  field((v, f, out) => {
    if (!isObject(v)) return fail(out, f, 'isObject', 'must be an object');
    checkShape(shape as Record<string, Field>, v, f, out);
  });

const role = oneOf('user', 'assistant', 'system', 'tool');
const nodeDef = object<{ id: string; kind?: string; label?: string; config?: unknown }>({
  id,
  kind: optional(str),
  label: optional(str),
  config: optional(field((v, f, out) => !isObject(v) && fail(out, f, 'isObject', 'must be an object'))),
});
const edgeDef = object<{ from: string; to: string }>({ from: id, to: id });

const BOT_SCHEMAS: { [K in keyof BotEventPayloads]: Shape<BotEventPayloads[K]> } = {
  run_started: { sessionId: id, runId: id, model: str },
  thinking: { sessionId: id, runId: id, content: str },
  message: { sessionId: id, runId: id, messageId: id, role, content: str, delta: bool, replyToId: optional(id) },
  tool_start: { sessionId: id, runId: id, toolCallId: id, tool: str, args: any },
  tool_end: { sessionId: id, runId: id, toolCallId: id, result: any, success: bool, durationMs: nonNegative },
  approval_needed: {
    sessionId: id,
    runId: id,
    approvalId: id,
    tool: str,
    args: any,
    riskLevel: oneOf('low', 'medium', 'high', 'critical'),
    expiresAt: num,
  },
  approval_resolved: { sessionId: id, approvalId: id, approved: bool, resolvedBy: str },
  plan_created: { sessionId: id, runId: id, planId: id, plan: str },
  plan_resolved: { sessionId: id, planId: id, response: oneOf('approve', 'reject', 'edit'), resolvedBy: str },
  usage: {
    sessionId: id,
    runId: id,
    promptTokens: nonNegative,
    completionTokens: nonNegative,
    totalTokens: nonNegative,
    totalCost: nonNegative,
  },
  error: { sessionId: id, runId: optional(id), code: str, message: str },
  done: { sessionId: id, runId: id, replyToId: optional(id), status: oneOf('completed', 'cancelled', 'failed') },
  session_created: { sessionId: id, title: str },
  platform_message: { sessionId: id, platform: str, chatId: str, role, content: str },
};

const nodeStatus = oneOf('pending', 'ready', 'running', 'waiting', 'completed', 'failed', 'skipped', 'cancelled');
const DAG_SCHEMAS: { [K in keyof DagEventPayloads]: Shape<DagEventPayloads[K]> } = {
  execution_started: {
    executionId: id,
    dagId: optional(id),
    nodes: arrayOf(nodeDef),
    edges: arrayOf(edgeDef),
    budgetUsd: optional(nonNegative),
  },
  node_state: { nodeId: id, status: nodeStatus, output: optional(any), metrics: optional(numberRecord), error: optional(str) },
  edge_active: { from: id, to: id },
  dag_mutated: {
    mutation: object<DagEventPayloads['dag_mutated']['mutation']>({
      addNodes: optional(arrayOf(nodeDef)),
      addEdges: optional(arrayOf(edgeDef)),
      removeNodes: optional(arrayOf(id)),
      removeEdges: optional(arrayOf(edgeDef)),
    }),
  },
  cost_update: { spent: nonNegative, budget: nonNegative, remaining: num },
  human_gate_waiting: { nodeId: id, prompt: str, options: optional(arrayOf(str)) },
  human_gate_resolved: { nodeId: id, decision: oneOf('approve', 'reject', 'modify'), resolvedBy: str },
  execution_state: { status: oneOf('running', 'paused', 'cancelling') },
  execution_complete: { status: oneOf('completed', 'failed', 'cancelled'), results: any },
  error: { nodeId: optional(id), code: str, message: str },
};

const SCHEMAS: Record<StreamKind, Record<string, Record<string, Field>>> = { bot: BOT_SCHEMAS, dag: DAG_SCHEMAS };

/** True when `type` is one of the contract's event types for streams of this kind. */
export function isKnownEventType(kind: StreamKind, type: string): boolean {
  return Object.prototype.hasOwnProperty.call(SCHEMAS[kind], type);
}

/**
 * Checks an event draft for a stream of `kind`. Types of the contract must match their
 * schema; other types (additions) need a valid name and an object payload. Any payload is
 * plain JSON nested at most MAX_JSON_DEPTH levels, with no RESERVED_KEYS anywhere.
 */
export function validateEventDraft(kind: StreamKind, type: unknown, payload: unknown): FieldViolation[] {
  const out: FieldViolation[] = [];
  if (!isEventTypeName(type)) {
    fail(out, 'type', 'matches', 'must be a lower snake case event type name');
    return out;
  }
  if (!isObject(payload)) {
    fail(out, 'payload', 'isObject', 'must be an object');
    return out;
  }
  // Before any schema code walks it: bounded depth, no prototype-named keys (see json-shape.ts).
  const shape = checkJsonShape(payload, 'payload');
  if (shape.length > 0) return shape;
  if (isKnownEventType(kind, type)) checkShape(SCHEMAS[kind][type], payload, 'payload', out);
  return out;
}

function checkShape(shape: Record<string, Field>, value: Record<string, unknown>, prefix: string, out: FieldViolation[]): void {
  for (const [key, f] of Object.entries(shape)) {
    const path = `${prefix}.${key}`;
    if (value[key] === undefined) {
      if (!f.optional) fail(out, path, 'isDefined', 'is required');
      continue;
    }
    f.check(value[key], path, out);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
