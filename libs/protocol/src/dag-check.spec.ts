import { checkDag, findCycle, nodeKind, topologicalOrder } from './dag-check';

describe('checkDag', () => {
  const nodes = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
  const messages = (dag: Parameters<typeof checkDag>[0]) => checkDag(dag).map((v) => v.message);

  it('accepts a DAG and orders it', () => {
    const dag = {
      nodes,
      edges: [
        { from: 'a', to: 'c' },
        { from: 'c', to: 'b' },
      ],
    };
    expect(checkDag(dag)).toEqual([]);
    expect(topologicalOrder(dag)).toEqual(['a', 'c', 'b']);
  });

  it('refuses duplicate ids, dangling edges and emptiness, naming the node or edge', () => {
    expect(messages({ nodes: [{ id: 'a' }, { id: 'a' }], edges: [] })).toEqual(['node id a appears twice']);
    expect(checkDag({ nodes, edges: [{ from: 'a', to: 'z' }] })).toEqual([
      { field: 'dag.edges.0.to', constraint: 'knownNode', message: 'edge a->z: to z is not a node' },
    ]);
    expect(checkDag({ nodes: [], edges: [] }).map((v) => v.constraint)).toEqual(['arrayNotEmpty']);
  });

  it('names the nodes of a cycle in edge order', () => {
    const dag = {
      nodes: [...nodes, { id: 'd' }],
      edges: [
        { from: 'a', to: 'b' },
        { from: 'b', to: 'c' },
        { from: 'c', to: 'b' },
        { from: 'c', to: 'd' },
      ],
    };
    expect(findCycle(dag)).toEqual(['b', 'c', 'b']);
    expect(messages(dag)).toEqual(['the edges form a cycle: b -> c -> b']);
    expect(findCycle({ nodes: [{ id: 'x' }], edges: [{ from: 'x', to: 'x' }] })).toEqual(['x', 'x']);
  });

  it('refuses unknown kinds and configs a kind cannot run', () => {
    expect(messages({ nodes: [{ id: 'n1', kind: 'teleport' }], edges: [] })).toEqual([
      'node n1: unknown kind teleport (known: task, delay, llm, tool, human_gate, map)',
    ]);
    expect(messages({ nodes: [{ id: 'w', kind: 'delay' }], edges: [] })).toEqual(['node w: config.ms must be a number >= 0']);
    expect(messages({ nodes: [{ id: 't', config: { fn: 3, costUsd: -1 } }], edges: [] })).toEqual([
      'node t: config.fn must name a function',
      'node t: config.costUsd must be a number >= 0',
    ]);
    expect(messages({ nodes: [{ id: 'l', kind: 'llm' }], edges: [] })).toEqual(['node l: config.prompt must be a non-empty string']);
    expect(messages({ nodes: [{ id: 't', kind: 'tool', config: { args: [] } }], edges: [] })).toEqual([
      'node t: config.tool must name a tool',
      'node t: config.args must be an object',
    ]);
    expect(messages({ nodes: [{ id: 'g', kind: 'human_gate', config: { options: [1] } }], edges: [] })).toEqual([
      'node g: config.options must be an array of strings',
    ]);
  });

  it('checks map nodes: one source, a predecessor to read, a template without id', () => {
    const template = { kind: 'task', config: { fn: 'echo' } };
    expect(checkDag({ nodes: [{ id: 'm', kind: 'map', config: { items: [1, 2], template } }], edges: [] })).toEqual([]);
    expect(messages({ nodes: [{ id: 'm', kind: 'map', config: { template } }], edges: [] })).toEqual([
      'node m: a map takes exactly one of config.items and config.fromNode',
    ]);
    expect(messages({ nodes: [{ id: 'src' }, { id: 'm', kind: 'map', config: { fromNode: 'src', template } }], edges: [] })).toEqual([
      'node m: config.fromNode must name one of its predecessors',
    ]);
    expect(messages({ nodes: [{ id: 'm', kind: 'map', config: { items: [], template: { id: 'x', kind: 'map' } } }], edges: [] })).toEqual([
      "node m: the template has no id (each item's node is named m.<index>)",
      'node m: a template runs a task, a delay, an llm or a tool, not map',
    ]);
  });

  it('keeps the echo engine kinds as aliases', () => {
    expect(nodeKind({})).toBe('task');
    expect(nodeKind({ kind: 'human' })).toBe('human_gate');
    expect(nodeKind({ kind: 'fail' })).toBe('task');
    expect(nodeKind({ kind: 'llm' })).toBe('llm');
    expect(nodeKind({ kind: 'agent' })).toBeNull();
  });
});
