import type { DagDefinition, DagNodeDef } from '../events/dag';

/**
 * A layered DAG for tests and benches: `layers` × `width` nodes named `l<layer>n<index>`, each
 * node feeding two of the next layer (the one below it and its neighbour), so every node after
 * the first layer has two predecessors. `node(k)` gives node k's fields but its id.
 */
export function layeredDag(layers: number, width: number, node: (k: number) => Omit<DagNodeDef, 'id'>): DagDefinition {
  const id = (l: number, i: number) => `l${l}n${i}`;
  const nodes = Array.from({ length: layers * width }, (_, k) => ({ ...node(k), id: id(Math.floor(k / width), k % width) }));
  const edges = Array.from({ length: layers - 1 }, (_, l) =>
    Array.from({ length: width }, (_, i) => [
      { from: id(l, i), to: id(l + 1, i) },
      { from: id(l, i), to: id(l + 1, (i + 1) % width) },
    ]).flat(),
  ).flat();
  return { nodes, edges };
}
