import { createServer } from 'node:net';
import Redis from 'ioredis';
import { clusterUrl } from './redis-target';
import { RedisServerProcess } from './redis-server';
import { waitFor } from './testing/wait';

/**
 * A private Redis Cluster of `redis-server` processes on loopback ports: masters that share
 * the 16384 slots, each with its replicas, so tests can fail a master over. It is formed
 * with CLUSTER MEET / ADDSLOTSRANGE / REPLICATE (no `redis-cli` needed) and can be stopped
 * and started again as a whole, or one master at a time, on the same ports and data.
 */
export interface RedisClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /** Append-only files, so a restarted cluster keeps its data. Default true. */
  persistent?: boolean;
  /** How long a node may be unreachable before its replica takes over. Default 1000 ms. */
  nodeTimeoutMs?: number;
}

const SLOTS = 16384;
/** A node's cluster bus listens on its port + 10000 (so ports stay ≤ 55535). */
const BUS_OFFSET = 10_000;

export class RedisClusterProcess {
  private constructor(
    readonly nodes: RedisServerProcess[],
    private readonly masterCount: number,
  ) {}

  static async start(options: RedisClusterOptions = {}): Promise<RedisClusterProcess> {
    const { masters = 3, replicasPerMaster = 1, persistent = true, nodeTimeoutMs = 1000 } = options;
    const args = [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-node-timeout',
      String(nodeTimeoutMs),
      // A replica however far behind may take over: tests fail masters over on purpose.
      '--cluster-replica-validity-factor',
      '0',
    ];
    const total = masters * (1 + replicasPerMaster);
    const nodes: RedisServerProcess[] = [];
    try {
      const ports = new Set<number>();
      const startNode = async (): Promise<RedisServerProcess> => {
        // A port found free can be taken before the node binds it: try another.
        for (let attempt = 1; ; attempt++) {
          let port = await freeClusterPort();
          while (ports.has(port)) port = await freeClusterPort();
          ports.add(port);
          try {
            return await RedisServerProcess.start({ port, persistent, args });
          } catch (error) {
            if (attempt >= 5) throw error;
          }
        }
      };
      const started = await Promise.allSettled(Array.from({ length: total }, startNode));
      for (const result of started) if (result.status === 'fulfilled') nodes.push(result.value);
      const failed = started.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      const cluster = new RedisClusterProcess(nodes, masters);
      await cluster.form(replicasPerMaster);
      return cluster;
    } catch (error) {
      await Promise.all(nodes.map((node) => node.dispose()));
      throw error;
    }
  }

  /** `redis+cluster://` with every node as a seed. */
  get url(): string {
    return clusterUrl(this.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })));
  }

  /** Stops every node (SIGTERM: append-only files are flushed). */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
  }

  /** Starts every stopped node again on its port; `wipe` drops the data but keeps the cluster's shape. */
  async start({ wipe = false } = {}): Promise<void> {
    await Promise.all(this.nodes.map((node) => (node.running ? undefined : node.restart({ wipe, keep: ['nodes.conf'] }))));
    await this.waitHealthy();
  }

  async restart({ wipe = false } = {}): Promise<void> {
    await this.stop();
    await this.start({ wipe });
  }

  async dispose(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.dispose()));
  }

  /** The node that serves `key`'s slot as master now. */
  async masterOf(key: string): Promise<RedisServerProcess> {
    const slot = await this.query((r) => r.call('CLUSTER', 'KEYSLOT', key));
    const shards = (await this.query((r) => r.call('CLUSTER', 'SLOTS'))) as Array<[number, number, [string, number, string]]>;
    const shard = shards.find(([from, to]) => Number(slot) >= from && Number(slot) <= to);
    const port = shard?.[2][1];
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no master serves slot ${String(slot)}`);
    return node;
  }

  /**
   * A planned, lossless failover (`CLUSTER FAILOVER` on a replica of `key`'s master):
   * resolves once the replica serves the slot as master.
   */
  async failover(key: string): Promise<void> {
    const master = await this.masterOf(key);
    const replica = await this.replicaOf(master);
    await withNode(replica.port, (r) => r.call('CLUSTER', 'FAILOVER'));
    await waitFor(async () => (await this.masterOf(key)).port === replica.port, { timeoutMs: 20_000, message: `replica ${replica.port} to take over` });
    await this.waitHealthy();
  }

  /**
   * Kills `key`'s master (SIGKILL): its replica is promoted after the node timeout. Resolves
   * once the cluster serves every slot again; the killed node is then started again (it
   * rejoins as a replica) unless `keepDown`.
   */
  async killMaster(key: string, { keepDown = false } = {}): Promise<RedisServerProcess> {
    const master = await this.masterOf(key);
    await master.stop(true);
    await waitFor(async () => (await this.masterOf(key).catch(() => master)).port !== master.port, {
      timeoutMs: 30_000,
      message: 'a replica to be promoted',
    });
    if (!keepDown) await master.restart();
    await this.waitHealthy();
    return master;
  }

  /** Every running node reports `cluster_state:ok` and every slot has a master. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      async () => {
        for (const node of this.nodes.filter((n) => n.running)) {
          const info = String(await withNode(node.port, (r) => r.call('CLUSTER', 'INFO')).catch(() => ''));
          if (!info.includes('cluster_state:ok')) return false;
        }
        return true;
      },
      { timeoutMs, intervalMs: 100, message: 'the Redis Cluster to be healthy' },
    );
  }

  private async replicaOf(master: RedisServerProcess): Promise<RedisServerProcess> {
    const masterId = String(await withNode(master.port, (r) => r.call('CLUSTER', 'MYID')));
    const lines = String(await withNode(master.port, (r) => r.call('CLUSTER', 'NODES')))
      .trim()
      .split('\n');
    const line = lines.find((l) => l.split(' ')[3] === masterId && !l.includes('fail'));
    const port = line ? Number(/:(\d+)@/.exec(line)?.[1]) : NaN;
    const replica = this.nodes.find((n) => n.port === port && n.running);
    if (!replica) throw new Error(`master ${master.port} has no live replica`);
    return replica;
  }

  /** Asks the first running node that answers. */
  private async query<T>(ask: (redis: Redis) => Promise<T>): Promise<T> {
    let lastError: unknown = new Error('no node is running');
    for (const node of this.nodes.filter((n) => n.running)) {
      try {
        return await withNode(node.port, ask);
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  private async form(replicasPerMaster: number): Promise<void> {
    const [first, ...others] = this.nodes;
    await withNode(first.port, async (r) => {
      for (const node of others) await r.call('CLUSTER', 'MEET', '127.0.0.1', String(node.port));
    });
    await waitFor(
      async () => {
        for (const node of this.nodes) {
          const known = String(await withNode(node.port, (r) => r.call('CLUSTER', 'NODES')))
            .trim()
            .split('\n');
          if (known.length < this.nodes.length || known.some((l) => l.includes('handshake'))) return false;
        }
        return true;
      },
      { timeoutMs: 15_000, intervalMs: 50, message: 'cluster nodes to meet' },
    );
    const masters = this.nodes.slice(0, this.masterCount);
    const ids = await Promise.all(masters.map((m) => withNode(m.port, (r) => r.call('CLUSTER', 'MYID'))));
    await Promise.all(
      masters.map((master, i) => {
        const from = Math.floor((i * SLOTS) / masters.length);
        const to = Math.floor(((i + 1) * SLOTS) / masters.length) - 1;
        return withNode(master.port, (r) => r.call('CLUSTER', 'ADDSLOTSRANGE', String(from), String(to)));
      }),
    );
    const replicas = this.nodes.slice(this.masterCount);
    for (let i = 0; i < replicas.length; i++) {
      const masterId = String(ids[Math.floor(i / replicasPerMaster)]);
      // The replica may not have heard of the master's id yet: retry until gossip caught up.
      await waitFor(
        () =>
          withNode(replicas[i].port, (r) => r.call('CLUSTER', 'REPLICATE', masterId)).then(
            () => true,
            () => false,
          ),
        { timeoutMs: 15_000, intervalMs: 100, message: `replica ${replicas[i].port} to follow its master` },
      );
    }
    await this.waitHealthy();
    // Replication must be up before a test fails a master over, or the replica has nothing.
    await waitFor(
      async () => {
        for (const replica of replicas) {
          const info = String(await withNode(replica.port, (r) => r.call('INFO', 'replication')));
          if (!info.includes('master_link_status:up')) return false;
        }
        return true;
      },
      { timeoutMs: 15_000, intervalMs: 100, message: 'replicas to sync' },
    );
  }
}

/** One short-lived connection to one node (cluster commands are per node). */
async function withNode<T>(port: number, ask: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await ask(redis);
  } finally {
    redis.disconnect();
  }
}

/** A free port whose cluster bus port (+10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    // Below the ephemeral range (32768+ here), so an outgoing connection cannot take the
    // port or its bus port (port + 10000) between this check and the node's bind.
    const port = 10_000 + Math.floor(Math.random() * 12_700);
    if ((await canListen(port)) && (await canListen(port + BUS_OFFSET))) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
