// Jest `setupFiles` of the `e2e-cluster` project: the same end-to-end suite, on a cluster.
process.env.TEST_REDIS_TOPOLOGY = 'cluster';
