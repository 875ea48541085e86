import type { FieldViolation } from './errors';
import type { DagDefinition } from './events/dag';

/**
 * Structural checks of a DAG definition beyond its schema: unique node ids, edges between
 * known nodes, no cycles. Used by the gateway before queueing an execution and by the
 * engine before running one.
 */
export function checkDag(dag: DagDefinition, field = 'dag'): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const ids = new Set<string>();
  dag.nodes.forEach((node, i) => {
    if (ids.has(node.id)) violations.push({ field: `${field}.nodes.${i}.id`, constraint: 'unique', message: `node id ${node.id} appears twice` });
    ids.add(node.id);
  });
  if (dag.nodes.length === 0) violations.push({ field: `${field}.nodes`, constraint: 'arrayNotEmpty', message: 'a DAG needs at least one node' });
  dag.edges.forEach((edge, i) => {
    for (const end of ['from', 'to'] as const) {
      if (!ids.has(edge[end])) {
        violations.push({ field: `${field}.edges.${i}.${end}`, constraint: 'knownNode', message: `edge ${end} ${edge[end]} is not a node` });
      }
    }
  });
  if (violations.length === 0 && topologicalOrder(dag) === null) {
    violations.push({ field: `${field}.edges`, constraint: 'acyclic', message: 'the edges form a cycle' });
  }
  return violations;
}

/** Node ids in an order where every edge points forward, or null when there is a cycle. */
export function topologicalOrder(dag: DagDefinition): string[] | null {
  const incoming = new Map(dag.nodes.map((n) => [n.id, 0]));
  const outgoing = new Map<string, string[]>(dag.nodes.map((n) => [n.id, []]));
  for (const { from, to } of dag.edges) {
    incoming.set(to, (incoming.get(to) ?? 0) + 1);
    outgoing.get(from)?.push(to);
  }
  const ready = dag.nodes.filter((n) => incoming.get(n.id) === 0).map((n) => n.id);
  const order: string[] = [];
  while (ready.length > 0) {
    const id = ready.shift() as string;
    order.push(id);
    for (const next of outgoing.get(id) ?? []) {
      const left = (incoming.get(next) ?? 0) - 1;
      incoming.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  return order.length === dag.nodes.length ? order : null;
}
