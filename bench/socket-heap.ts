import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisServerProcess, waitFor } from '@app/runtime';
import { type AppProcess, startGateway } from '../test/support/processes';
import { signToken } from '../test/support/tokens';
import { HelperProcess, rssKb, sleep } from './common';
import { plainScript } from './plain-script';

/**
 * Where an idle socket's memory goes: heap snapshots of a gateway pod and of the baseline
 * server (bench/baseline-server.ts) with 0 and with N idle sockets connected and subscribed
 * (joined), diffed by what holds each heap object. Run with
 * `node -r ts-node/register/transpile-only -r tsconfig-paths/register bench/socket-heap.ts [N]`
 * after `npm run build`. Not part of `npm run bench`: a snapshot stops the process for seconds.
 */

const N = Number(process.argv[2] ?? 2_000);
const TOP = 30;
const ROOT = join(__dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'rtgw-heap-'));

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Bucket {
  count: number;
  bytes: number;
}

/**
 * Self sizes summed per kind of object. Objects and closures are named by their constructor
 * or function; arrays, strings and V8 internals by the object and property that reference
 * them first (e.g. `Socket.handshake → Object`), which is what says whose they are.
 */
function summarize(file: string): { total: number; buckets: Map<string, Bucket> } {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const { node_fields: nodeFields, node_types: nodeTypes, edge_fields: edgeFields, edge_types: edgeTypes } = snap.snapshot.meta;
  const nf = nodeFields.length;
  const ef = edgeFields.length;
  const [typeNames] = nodeTypes;
  const [edgeTypeNames] = edgeTypes;
  const T = nodeFields.indexOf('type');
  const NAME = nodeFields.indexOf('name');
  const SIZE = nodeFields.indexOf('self_size');
  const EDGES = nodeFields.indexOf('edge_count');
  const ET = edgeFields.indexOf('type');
  const EN = edgeFields.indexOf('name_or_index');
  const TO = edgeFields.indexOf('to_node');
  const { nodes, edges, strings } = snap;
  const count = nodes.length / nf;

  // First strong retainer of each node: (parent node ordinal, edge label).
  const parent = new Int32Array(count).fill(-1);
  const parentEdge: Array<string | undefined> = new Array<string | undefined>(count);
  let e = 0;
  for (let n = 0; n < count; n++) {
    const edgeCount = nodes[n * nf + EDGES];
    for (let i = 0; i < edgeCount; i++, e += ef) {
      const kind = edgeTypeNames[edges[e + ET]];
      if (kind === 'weak' || kind === 'shortcut') continue;
      const to = edges[e + TO] / nf;
      if (parent[to] !== -1) continue;
      parent[to] = n;
      parentEdge[to] = kind === 'element' || kind === 'hidden' ? `[${kind}]` : strings[edges[e + EN]];
    }
  }

  const nameOf = (n: number): string => {
    const type = typeNames[nodes[n * nf + T]];
    const name = strings[nodes[n * nf + NAME]];
    if (type === 'object') return name.split(' ')[0];
    if (type === 'closure') return `closure ${name || '(anonymous)'}`;
    return `(${type})`;
  };
  const buckets = new Map<string, Bucket>();
  let total = 0;
  for (let n = 0; n < count; n++) {
    const type = typeNames[nodes[n * nf + T]];
    const size = nodes[n * nf + SIZE];
    total += size;
    let key: string;
    if (type === 'object') {
      key = nameOf(n);
    } else {
      const p = parent[n];
      key = p >= 0 ? `${nameOf(p)}.${parentEdge[n] ?? '?'} → (${type})` : `(${type})`;
    }
    const bucket = buckets.get(key) ?? { count: 0, bytes: 0 };
    bucket.count++;
    bucket.bytes += size;
    buckets.set(key, bucket);
  }
  return { total, buckets };
}

/** Sends SIGUSR2 (`--heapsnapshot-signal`) and waits for the finished file. */
async function snapshot(pid: number, label: string, alive: () => Promise<unknown>): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  const file = await waitFor(() => readdirSync(dir).find((f) => !before.has(f) && f.endsWith('.heapsnapshot')), {
    timeoutMs: 60_000,
    intervalMs: 100,
    message: `heap snapshot of ${label}`,
  });
  // The snapshot is written on the main thread: once the process answers again, it is done.
  await alive();
  let size = -1;
  while (statSync(join(dir, file)).size !== size) {
    size = statSync(join(dir, file)).size;
    await sleep(300);
  }
  return join(dir, file);
}

function report(label: string, empty: string, full: string, rss: number): void {
  const a = summarize(empty);
  const b = summarize(full);
  const rows = [...b.buckets.entries()]
    .map(([key, bucket]) => {
      const base = a.buckets.get(key) ?? { count: 0, bytes: 0 };
      return { key, count: (bucket.count - base.count) / N, bytes: (bucket.bytes - base.bytes) / N };
    })
    .sort((x, y) => y.bytes - x.bytes);
  console.log(`\n## ${label}: ${N} idle sockets — heap ${((b.total - a.total) / N / 1024).toFixed(2)} KB/socket, RSS ${(rss / N).toFixed(2)} KB/socket`);
  console.log('| held as | objects/socket | bytes/socket |');
  console.log('|---|---:|---:|');
  for (const row of rows.slice(0, TOP)) console.log(`| ${row.key} | ${row.count.toFixed(2)} | ${row.bytes.toFixed(0)} |`);
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, 'dist', 'apps', 'gateway', 'main.js'))) throw new Error('run npm run build first');
  const redis = await RedisServerProcess.start({ persistent: false });
  const flags = ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`];
  const helpers: HelperProcess[] = [];
  let gateway: AppProcess | null = null;
  try {
    gateway = await startGateway({ redisUrl: redis.url, env: { NODE_OPTIONS: flags.join(' ') } }, 'heap-gw');
    const gw = gateway;
    const baseline = HelperProcess.fork('baseline', plainScript(join(__dirname, 'baseline-server.ts')), { REDIS_URL: redis.url }, flags);
    const clients = HelperProcess.fork('clients', join(__dirname, 'clients.ts'), {});
    helpers.push(baseline, clients);
    const { port } = await baseline.started();
    await clients.started();
    const token = await signToken({ sub: 'heap', scope: ['admin'], expiresInSeconds: 3600 });
    const sides = [
      { label: 'gateway pod', kind: 'gateway', url: gw.url, pid: gw.pid ?? -1, alive: () => fetch(`${gw.url}/healthz`) },
      { label: 'baseline server', kind: 'baseline', url: `http://127.0.0.1:${Number(port)}`, pid: baseline.pid, alive: () => baseline.request('cpu') },
    ];
    for (const side of sides.filter((s) => !process.env.HEAP_SIDES || process.env.HEAP_SIDES.split(',').includes(s.kind))) {
      const connect = (group: string, count: number) =>
        clients.request('connect', { group, kind: side.kind, url: side.url, count, token, target: 'bot:heap-idle', concurrency: 100 }, 300_000);
      await connect('warm', 100);
      await clients.request('close', { group: 'warm' });
      await sleep(2_000);
      const empty = await snapshot(side.pid, side.label, side.alive);
      const rssBefore = rssKb(side.pid);
      await connect('idle', N);
      await sleep(2_000);
      const rss = rssKb(side.pid) - rssBefore;
      const full = await snapshot(side.pid, side.label, side.alive);
      report(side.label, empty, full, rss);
      await clients.request('close', { group: 'idle' });
    }
  } finally {
    for (const helper of helpers) helper.kill();
    await gateway?.kill();
    await redis.dispose();
    if (!process.env.HEAP_KEEP) rmSync(dir, { recursive: true, force: true });
    else console.log(`snapshots kept in ${dir}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
