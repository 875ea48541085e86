import type { Cluster } from 'ioredis';
import { RedisPair } from './redis';
import { RedisClusterProcess } from './redis-cluster';
import { waitFor } from './testing/wait';

let cluster: RedisClusterProcess;
let pair: RedisPair | null = null;

beforeAll(async () => {
  cluster = await RedisClusterProcess.start({ persistent: false });
}, 60_000);
afterAll(async () => {
  await pair?.close();
  await cluster.dispose();
});

describe('RedisPair on a cluster', () => {
  it('is not ready while a master its slots name is dead, and ready again once a replica serves them', async () => {
    pair = new RedisPair({ url: cluster.url, owner: 'spec' }, () => undefined);
    await waitFor(() => pair?.ready, { message: 'ready at start', timeoutMs: 20_000 });

    const master = await cluster.masterOf('{readiness}');
    const commands = pair.commands as Cluster;
    const slotsName = (port: number) => commands.slots.some((owners) => owners?.[0]?.endsWith(`:${port}`));
    await master.stop(true);
    // ioredis drops the dead master's connection soon; its slots still name it until the
    // failover and a slots refresh, and answer nothing meanwhile: red all that time, not
    // only while a PING to the dropped connection happens to fail.
    const samples: boolean[] = [];
    await waitFor(
      () => {
        samples.push(pair?.ready ?? false);
        return !slotsName(master.port);
      },
      { message: 'the slots to name a new master', timeoutMs: 30_000, intervalMs: 20 },
    );
    const firstRed = samples.indexOf(false);
    expect(firstRed).toBeGreaterThanOrEqual(0);
    expect(samples.slice(firstRed).filter(Boolean)).toEqual([]);

    await cluster.waitHealthy();
    await waitFor(() => pair?.ready, { message: 'ready again after the failover', timeoutMs: 20_000 });
    expect(await pair.commands.set('{readiness}:k', 'v')).toBe('OK');
  });
});
