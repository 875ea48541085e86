import type { FieldViolation } from './errors';
import type { DagDefinition, DagNodeDef } from './events/dag';

/**
 * Node kinds the engine runs (PROTOCOL.md §10). A node without `kind` is a `task`. `human`
 * and `fail` are the echo engine's names, kept as aliases of `human_gate` and of a `task`
 * running `fail`, so definitions written against it still start.
 */
export const DAG_NODE_KINDS = ['task', 'delay', 'llm', 'tool', 'human_gate', 'map'] as const;
export type DagNodeKind = (typeof DAG_NODE_KINDS)[number];
const KIND_ALIASES: Record<string, DagNodeKind> = { human: 'human_gate', fail: 'task' };

/** The kind that runs a node, or null for a kind the engine does not know. */
export function nodeKind(node: Pick<DagNodeDef, 'kind'>): DagNodeKind | null {
  const kind = node.kind ?? 'task';
  if ((DAG_NODE_KINDS as readonly string[]).includes(kind)) return kind as DagNodeKind;
  return KIND_ALIASES[kind] ?? null;
}

/** Items one `map` node may fan out to. */
export const MAP_MAX_ITEMS = 1000;

/**
 * Structural checks of a DAG definition beyond its schema: unique node ids, known kinds with
 * the config they need, edges between known nodes, no cycles. Every message names the node
 * (or the edge's ends) at fault. Used by the gateway before queueing an execution.
 */
export function checkDag(dag: DagDefinition, field = 'dag'): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const add = (at: string, constraint: string, message: string) => violations.push({ field: at, constraint, message });
  const ids = new Set<string>();
  dag.nodes.forEach((node, i) => {
    if (ids.has(node.id)) add(`${field}.nodes.${i}.id`, 'unique', `node id ${node.id} appears twice`);
    ids.add(node.id);
  });
  if (dag.nodes.length === 0) add(`${field}.nodes`, 'arrayNotEmpty', 'a DAG needs at least one node');
  dag.edges.forEach((edge, i) => {
    for (const end of ['from', 'to'] as const) {
      if (!ids.has(edge[end])) add(`${field}.edges.${i}.${end}`, 'knownNode', `edge ${edge.from}->${edge.to}: ${end} ${edge[end]} is not a node`);
    }
  });
  dag.nodes.forEach((node, i) => checkNode(dag, node, `${field}.nodes.${i}`, add));
  if (violations.length === 0) {
    const cycle = findCycle(dag);
    if (cycle) add(`${field}.edges`, 'acyclic', `the edges form a cycle: ${cycle.join(' -> ')}`);
  }
  return violations;
}

type Add = (field: string, constraint: string, message: string) => void;

function checkNode(dag: DagDefinition, node: DagNodeDef, at: string, add: Add): void {
  const kind = nodeKind(node);
  const config = node.config ?? {};
  if (kind === null) return add(`${at}.kind`, 'knownKind', `node ${node.id}: unknown kind ${node.kind} (known: ${DAG_NODE_KINDS.join(', ')})`);
  const number = (key: string, required: boolean) => {
    const value = config[key];
    if (value === undefined && !required) return;
    if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0))
      add(`${at}.config.${key}`, 'min', `node ${node.id}: config.${key} must be a number >= 0`);
  };
  if (kind === 'delay') number('ms', true);
  if (kind === 'task') {
    if (config.fn !== undefined && !(typeof config.fn === 'string' && config.fn.length > 0))
      add(`${at}.config.fn`, 'isString', `node ${node.id}: config.fn must name a function`);
    number('costUsd', false);
    number('durationMs', false);
  }
  if (kind === 'human_gate') {
    if (config.prompt !== undefined && typeof config.prompt !== 'string')
      add(`${at}.config.prompt`, 'isString', `node ${node.id}: config.prompt must be a string`);
    const options = config.options;
    if (options !== undefined && !(Array.isArray(options) && options.every((o) => typeof o === 'string')))
      add(`${at}.config.options`, 'isArray', `node ${node.id}: config.options must be an array of strings`);
  }
  if (kind === 'llm') {
    if (!(typeof config.prompt === 'string' && config.prompt.length > 0))
      add(`${at}.config.prompt`, 'isString', `node ${node.id}: config.prompt must be a non-empty string`);
    if (config.model !== undefined && typeof config.model !== 'string') add(`${at}.config.model`, 'isString', `node ${node.id}: config.model must be a string`);
  }
  if (kind === 'tool') {
    if (!(typeof config.tool === 'string' && config.tool.length > 0)) add(`${at}.config.tool`, 'isString', `node ${node.id}: config.tool must name a tool`);
    const args = config.args;
    if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args)))
      add(`${at}.config.args`, 'isObject', `node ${node.id}: config.args must be an object`);
  }
  if (kind === 'map') checkMap(dag, node, at, add);
}

function checkMap(dag: DagDefinition, node: DagNodeDef, at: string, add: Add): void {
  const { items, fromNode, template } = node.config ?? {};
  if ((items === undefined) === (fromNode === undefined))
    add(`${at}.config`, 'mapSource', `node ${node.id}: a map takes exactly one of config.items and config.fromNode`);
  if (items !== undefined && !(Array.isArray(items) && items.length <= MAP_MAX_ITEMS))
    add(`${at}.config.items`, 'isArray', `node ${node.id}: config.items must be an array of at most ${MAP_MAX_ITEMS}`);
  if (fromNode !== undefined && !dag.edges.some((e) => e.from === fromNode && e.to === node.id))
    add(`${at}.config.fromNode`, 'predecessor', `node ${node.id}: config.fromNode must name one of its predecessors`);
  if (typeof template !== 'object' || template === null || Array.isArray(template)) {
    return add(`${at}.config.template`, 'isObject', `node ${node.id}: config.template must be a node without id`);
  }
  const t = template as Partial<DagNodeDef>;
  if (t.id !== undefined) add(`${at}.config.template.id`, 'absent', `node ${node.id}: the template has no id (each item's node is named ${node.id}.<index>)`);
  const kind = nodeKind(t);
  if (kind === null || kind === 'map' || kind === 'human_gate')
    add(`${at}.config.template.kind`, 'knownKind', `node ${node.id}: a template runs a task, a delay, an llm or a tool, not ${t.kind}`);
  if (node.id.length > 120) add(`${at}.id`, 'maxLength', `node ${node.id}: a map's id is at most 120 characters (its items add .<index>)`);
}

/** Node ids in an order where every edge points forward, or null when there is a cycle. */
export function topologicalOrder(dag: DagDefinition): string[] | null {
  const order = kahn(dag);
  return order.length === dag.nodes.length ? order : null;
}

function kahn(dag: DagDefinition): string[] {
  const incoming = new Map(dag.nodes.map((n) => [n.id, 0]));
  const outgoing = new Map<string, string[]>(dag.nodes.map((n) => [n.id, []]));
  for (const { from, to } of dag.edges) {
    incoming.set(to, (incoming.get(to) ?? 0) + 1);
    outgoing.get(from)?.push(to);
  }
  const ready = dag.nodes.filter((n) => incoming.get(n.id) === 0).map((n) => n.id);
  const order: string[] = [];
  for (let i = 0; i < ready.length; i++) {
    const id = ready[i];
    order.push(id);
    for (const next of outgoing.get(id) ?? []) {
      const left = (incoming.get(next) ?? 0) - 1;
      incoming.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  return order;
}

/**
 * One cycle, as node ids (the first repeated last), or null. Every node Kahn's order leaves
 * out has a predecessor it also left out, so walking predecessors from one of them must
 * come back to a node already seen.
 */
export function findCycle(dag: DagDefinition): string[] | null {
  const ordered = new Set(kahn(dag));
  const left = dag.nodes.map((n) => n.id).filter((id) => !ordered.has(id));
  if (left.length === 0) return null;
  const predecessor = new Map<string, string>();
  for (const { from, to } of dag.edges) if (!ordered.has(from) && !ordered.has(to)) predecessor.set(to, from);
  const path: string[] = [];
  const seen = new Map<string, number>();
  let at = left[0];
  while (!seen.has(at)) {
    seen.set(at, path.length);
    path.push(at);
    at = predecessor.get(at) as string;
  }
  return [...path.slice(seen.get(at)), at].reverse();
}
