import { checkDag, topologicalOrder } from './dag-check';

describe('checkDag', () => {
  const nodes = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];

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

  it('refuses duplicate ids, unknown ends, cycles and emptiness', () => {
    expect(checkDag({ nodes: [{ id: 'a' }, { id: 'a' }], edges: [] }).map((v) => v.constraint)).toEqual(['unique']);
    expect(checkDag({ nodes, edges: [{ from: 'a', to: 'z' }] }).map((v) => v.field)).toEqual(['dag.edges.0.to']);
    expect(
      checkDag({
        nodes,
        edges: [
          { from: 'a', to: 'b' },
          { from: 'b', to: 'a' },
        ],
      }).map((v) => v.constraint),
    ).toEqual(['acyclic']);
    expect(checkDag({ nodes: [], edges: [] }).map((v) => v.constraint)).toEqual(['arrayNotEmpty']);
  });
});
