import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RETENTION, StreamHistory } from '@app/backplane';
import { RealtimeClient } from '@app/client';
import type { DagDefinition, Envelope } from '@app/protocol';
import { layeredDag } from '@app/protocol/testing/dag-shapes';
import { acquireRedis, createRedis, waitFor } from '@app/runtime';
import { startGateway, startWorker } from '../test/support/processes';
import { signToken } from '../test/support/tokens';

/**
 * `npm run bench:dags`: the DAG engine on two workers (separate processes from the build), one
 * gateway pod and a private redis-server. Two executions of 1,000 nodes of 1 ms: independent
 * (the target: ≥ 500 nodes/s), and 10 layers of 100 (each node waiting for two of the
 * layer before), each echoing its own small args (a bare `echo` returns its inputs, which nest
 * layer by layer). Per execution: nodes/s from `execution_started` to `execution_complete`
 * (stream timestamps), scheduling overhead per node, node_state events/s, and a late
 * joiner's snapshot size and subscribe time. Writes bench/results/dags-<date>.md.
 */
const NODES = 1000;

function independent(): DagDefinition {
  return { nodes: Array.from({ length: NODES }, (_, i) => ({ id: `n${i}`, config: { durationMs: 1, args: i } })), edges: [] };
}

interface Figures {
  name: string;
  seconds: number;
  nodesPerSecond: number;
  overheadMsPerNode: number;
  nodeStatesPerSecond: number;
  snapshotKb: number;
  subscribeMs: number;
  events: number;
}

async function main(): Promise<void> {
  const redis = await acquireRedis({ ownServer: true, persistent: false });
  // The layered definition (1,800 edges) is ~95 KB: within the default 256 KiB command payload.
  const gateway = await startGateway({ redisUrl: redis.url, env: {} }, 'bench-gw');
  const workers = await Promise.all([1, 2].map(() => startWorker({ redisUrl: redis.url, env: { LOG_LEVEL: 'warn', DAG_EXECUTION_CONCURRENCY: '200' } })));
  const reader = createRedis({ url: redis.url, role: 'bench-read' });
  const token = () => signToken({ sub: 'bench', scope: ['dag:*'] });
  const client = new RealtimeClient({ url: gateway.url, token });
  const results: Figures[] = [];
  try {
    for (const [name, dag, criticalPathMs] of [
      ['1,000 independent nodes of 1 ms', independent(), 1],
      ['10 layers × 100 nodes of 1 ms', layeredDag(10, 100, (k) => ({ config: { durationMs: 1, args: k } })), 10],
    ] as const) {
      const { executionId } = await client.command('start_execution', { dag }, { timeoutMs: 30_000 });
      const stream = `dag:${executionId}` as const;
      const history = new StreamHistory(reader, DEFAULT_RETENTION);
      await waitFor(async () => (await history.head(stream))?.seq, { message: 'started', timeoutMs: 30_000 });
      await waitFor(
        async () => {
          const head = await history.head(stream);
          const last = await history.range(stream, head?.seq ?? 0, head?.seq ?? 0);
          return last[0]?.type === 'execution_complete';
        },
        { message: `${name} complete`, timeoutMs: 120_000, intervalMs: 100 },
      );
      const head = await history.head(stream);
      const events: Envelope[] = await history.range(stream, 1, head?.seq ?? 0);
      const started = events[0].ts;
      const ended = events[events.length - 1].ts;
      const seconds = (ended - started) / 1000;
      const late = new RealtimeClient({ url: gateway.url, token });
      const t0 = performance.now();
      const store = await late.subscribe(stream);
      const subscribeMs = performance.now() - t0;
      late.close();
      results.push({
        name,
        seconds,
        nodesPerSecond: NODES / seconds,
        overheadMsPerNode: (ended - started - criticalPathMs) / NODES,
        nodeStatesPerSecond: events.filter((e) => e.type === 'node_state').length / seconds,
        snapshotKb: Buffer.byteLength(JSON.stringify(store.state)) / 1024,
        subscribeMs,
        events: events.length,
      });
      console.log(results.at(-1));
    }
  } finally {
    client.close();
    await reader.quit();
    await Promise.all([gateway, ...workers].map((p) => p.kill()));
    await redis.release();
  }
  const dir = join(__dirname, 'results');
  if (!existsSync(dir)) mkdirSync(dir);
  const date = new Date().toISOString().slice(0, 10);
  let file = join(dir, `dags-${date}.md`);
  for (let n = 2; existsSync(file); n++) file = join(dir, `dags-${date}-${n}.md`);
  const rows = results.map(
    (r) =>
      `| ${r.name} | ${r.seconds.toFixed(2)} | ${r.nodesPerSecond.toFixed(0)} | ${r.overheadMsPerNode.toFixed(2)} | ${r.nodeStatesPerSecond.toFixed(0)} | ${r.events} | ${r.snapshotKb.toFixed(1)} | ${r.subscribeMs.toFixed(0)} |`,
  );
  writeFileSync(
    file,
    [
      `# DAG engine, ${date}`,
      '',
      `${cpus().length} cores (load ${loadavg()[0].toFixed(2)} at the end), one redis-server, one gateway pod (default MAX_PAYLOAD_BYTES, 256 KiB), two workers`,
      '(`DAG_NODE_CONCURRENCY` 50 each, `DAG_EXECUTION_CONCURRENCY` 200). Times from the stream: `execution_started` to',
      "`execution_complete`. Overhead per node: wall time less the critical path (the nodes' own 1 ms per layer),",
      'divided by the nodes: what scheduling, publishing and queueing add per node at this parallelism.',
      '',
      '| execution | seconds | nodes/s | overhead ms/node | node_state/s | events | late snapshot KB | late subscribe ms |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
      '',
    ].join('\n'),
  );
  console.log(`wrote ${file}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
