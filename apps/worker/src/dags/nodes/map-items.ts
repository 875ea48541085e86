import type { DagNodeDef } from '@app/protocol';
import { MAP_MAX_ITEMS } from '@app/protocol';
import { NodeFunctionError } from './node-functions';

/** A map node's items: its `config.items`, or the output of its `config.fromNode` (an array). */
export function mapItems(node: DagNodeDef, inputs: Record<string, unknown>): unknown[] {
  const config = node.config ?? {};
  const items = Array.isArray(config.items) ? config.items : inputs[String(config.fromNode)];
  if (!Array.isArray(items)) throw new NodeFunctionError(`the output of ${String(config.fromNode)} is not an array`);
  if (items.length > MAP_MAX_ITEMS) throw new NodeFunctionError(`${items.length} items: a map takes at most ${MAP_MAX_ITEMS}`);
  return items;
}
