/**
 * Which Redis the end-to-end tests run against: the `e2e` Jest project uses one private
 * `redis-server`, the `e2e-cluster` project a private 3-master Redis Cluster with a
 * replica each (it sets `TEST_REDIS_TOPOLOGY=cluster` in `test/support/cluster-topology.ts`).
 */
export type Topology = 'single' | 'cluster';

export function testTopology(): Topology {
  return process.env.TEST_REDIS_TOPOLOGY === 'cluster' ? 'cluster' : 'single';
}
