import { type ChildProcess, fork as forkChild } from 'node:child_process';
import { join, relative } from 'node:path';
import Redis from 'ioredis';
import { RedisServerProcess } from '@app/runtime';
import { type AppProcess, startGateway } from '../test/support/processes';
import { TEST_API_KEY } from '../test/support/tokens';
import { HelperProcess, nowUs, redisCpuUs, rssKb } from '../bench/common';
import { plainScript } from '../bench/plain-script';
import type { ClientStats } from './client-worker';
import type { LoadConfig, SideKey } from './config';
import { Histogram, procCpuUs } from './stats';

/**
 * One side of the comparison, alone on the machine: a private Redis, the pods (gateway
 * pods from the build, or bench/baseline-server.ts), publisher processes and client
 * processes. Everything it starts is killed when the driver exits, however it exits.
 */

const everything = new Set<{ kill(): unknown }>();
process.on('exit', () => {
  for (const child of everything) void child.kill();
});

// Processes without an IPC channel are also registered with the reaper, which kills them if
// this driver dies without running its exit handlers (SIGKILL).
let reaper: ChildProcess | null = null;
function reaped(pid: number | undefined): () => void {
  if (!pid || pid < 0) return () => undefined;
  reaper ??= forkChild(join(__dirname, 'reaper.ts'), [], { execArgv: process.execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  reaper.send({ watch: pid });
  return () => reaper?.connected && reaper.send({ forget: pid });
}

export interface Pod {
  name: string;
  /** Where it listens (a baseline pod started again gets a new port). */
  url: string;
  pid: number;
  alive: boolean;
  /** SIGKILL. */
  kill(): Promise<void>;
  /** SIGTERM (the gateway drains its sockets first; the baseline server just exits); answers the exit code. */
  stop(): Promise<number | null>;
  /** Starts it again after a kill or stop (gateway: same port), ready for sockets. */
  start(): Promise<void>;
}

export interface PublisherStop {
  indexes: number[];
  sent: number[];
  finals: number[];
  errors: number;
  httpRetries: number;
}

/** Cumulative readings at one instant; two of them make a measured phase. */
export interface Snapshot {
  atUs: number;
  podCpuUs: number[];
  redisCpuUs: number;
  clientCpuUs: number;
  publisherCpuUs: number;
  published: number;
  publishErrors: number;
  clients: ClientStats;
}

/** Source addresses per TCP proxy process for its connections to the pod (it forwards ≤ ~8k). */
const PROXY_SOURCE_ADDRESSES = 8;

export class LoadSystem {
  /** Per pod, the TCP proxy processes in front of it, once a network drill started them. */
  proxies: HelperProcess[][] | null = null;
  private proxyUrls: string[][] = [];

  private constructor(
    readonly side: SideKey,
    readonly redisServer: RedisServerProcess,
    readonly redis: Redis,
    readonly pods: Pod[],
    readonly publishers: HelperProcess[],
    readonly clients: HelperProcess[],
    private forgetRedis: () => void,
    readonly tokens: string[],
  ) {}

  static async start(side: SideKey, cfg: LoadConfig, tokens: string[], log: (line: string) => void): Promise<LoadSystem> {
    // The redis-restart drill needs Redis to keep its data: started with an append-only file
    // (so it loads it again when restarted), which is switched off until the drill.
    const persistent = cfg.drills.includes('redis-restart');
    const redisServer = await RedisServerProcess.start({ persistent, args: ['--maxclients', '1000'] });
    everything.add({ kill: () => redisServer.dispose() });
    const redis = new Redis(redisServer.url);
    if (persistent) await redis.config('SET', 'appendonly', 'no');
    const forgetRedis = reaped(await redisPid(redis));
    const pods: Pod[] = [];
    // One pod at a time: N NestJS pods booting at once on two cores only time each other out.
    for (let i = 0; i < cfg.pods; i++) pods.push(side === 'full' ? await gatewayPod(redisServer.url, i) : await baselinePod(redisServer.url, i));
    log(`${side}: redis ${redisServer.url}, ${pods.length} pods (pids ${pods.map((p) => p.pid).join(', ')})`);

    const publishers = Array.from({ length: cfg.publishers }, (_, i) =>
      fork(`publisher-${i + 1}`, 'publisher-worker.ts', {
        REDIS_URL: redisServer.url,
        LOAD_PUBLISH: side === 'baseline' ? 'baseline' : cfg.via,
        LOAD_API_KEY: TEST_API_KEY,
      }),
    );
    const clients = Array.from({ length: cfg.clients }, (_, i) => fork(`client-${i + 1}`, 'client-worker.ts', {}, ['--max-old-space-size=4096']));
    await Promise.all([...publishers, ...clients].map((helper) => helper.started(60_000)));

    const perClient = Math.ceil(cfg.sockets / cfg.clients);
    await Promise.all(
      clients.map((client, c) =>
        client.request('init', {
          plan: {
            kind: side === 'full' ? 'gateway' : 'baseline',
            lib: cfg.lib,
            routes: pods.map((p) => [p.url]),
            tokens,
            streams: streamNames(cfg),
            hotEvery: cfg.hotEvery,
            first: c * perClient,
            count: Math.max(0, Math.min(perClient, cfg.sockets - c * perClient)),
            addrs: cfg.addrs,
            concurrency: cfg.concurrency,
            reconnectJitterMs: cfg.reconnectJitterMs,
          },
        }),
      ),
    );
    return new LoadSystem(side, redisServer, redis, pods, publishers, clients, forgetRedis, tokens);
  }

  /**
   * Starts `perPod` TCP proxy processes in front of each pod (idempotent) and hands the
   * clients the routes through them; their sockets move there on `migrate`.
   */
  async startProxies(perPod: number): Promise<void> {
    if (this.proxies) return;
    // Each proxy connects to its pod from its own source addresses (127.0.<2 + proxy>.1–8), ≤ ~1k
    // connections each: from one address, ~14k connections to one port make every connect() slow.
    this.proxies = this.pods.map((pod, j) =>
      Array.from({ length: perPod }, (_, m) =>
        fork(`proxy-${j + 1}.${m + 1}`, 'proxy-worker.ts', {
          PROXY_TARGET_PORT: String(new URL(pod.url).port),
          PROXY_SOURCE_ADDRESSES: Array.from({ length: PROXY_SOURCE_ADDRESSES }, (_, a) => `127.0.${2 + j * perPod + m}.${a + 1}`).join(','),
        }),
      ),
    );
    this.proxyUrls = await Promise.all(this.proxies.map((group) => Promise.all(group.map(async (p) => String((await p.started(60_000)).url)))));
    await this.announcePods();
  }

  /** Every proxy process, flat. */
  get proxyList(): HelperProcess[] {
    return (this.proxies ?? []).flat();
  }

  /** Per pod, how the clients reach it now. */
  routes(): string[][] {
    return this.proxies ? this.proxyUrls : this.pods.map((p) => [p.url]);
  }

  /** Restarts Redis on the same port (SIGTERM, so an append-only file is flushed); the reaper follows the new pid. */
  async restartRedis(): Promise<void> {
    this.forgetRedis();
    await this.redisServer.restart();
    this.forgetRedis = reaped(await redisPid(this.redis));
  }

  /** Sends one request to every client process and answers their replies. */
  eachClient<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T[]> {
    return Promise.all(this.clients.map((client) => client.request<T>(cmd, args, timeoutMs)));
  }

  eachPublisher<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T[]> {
    return Promise.all(this.publishers.map((p) => p.request<T>(cmd, args, timeoutMs)));
  }

  podRssKb(): number {
    return this.pods.filter((p) => p.alive).reduce((sum, p) => sum + rssKb(p.pid), 0);
  }

  /** Starts every publisher on its share of the streams (stream j goes to publisher j mod P). */
  async startPublishing(cfg: LoadConfig): Promise<void> {
    const names = streamNames(cfg);
    const streams = names.map((name, index) => ({ name, index, rate: cfg.hotEvery > 0 && index === names.length - 1 ? cfg.hotRate : cfg.rate }));
    await Promise.all(
      this.publishers.map((p, i) =>
        p.request('start', {
          streams: streams.filter((_, j) => j % this.publishers.length === i),
          pods: this.pods.map((pod) => pod.url),
          padBytes: cfg.padBytes,
        }),
      ),
    );
  }

  /** Stops publishing; answers the last seq (full path) or counter (baseline) of every stream. */
  async stopPublishing(streamCount: number): Promise<{ finals: number[]; errors: number; httpRetries: number; sent: number }> {
    const replies = await this.eachPublisher<PublisherStop>('stop', {}, 120_000);
    const finals = new Array<number>(streamCount).fill(0);
    let errors = 0;
    let httpRetries = 0;
    let sent = 0;
    for (const reply of replies) {
      reply.indexes.forEach((s, j) => (finals[s] = reply.finals[j]));
      errors += reply.errors;
      httpRetries += reply.httpRetries;
      sent += reply.sent.reduce((a, b) => a + b, 0);
    }
    return { finals, errors, httpRetries, sent };
  }

  /** Tells clients and publishers which pods are up (no new connections go to the others) and how to reach them. */
  async announcePods(): Promise<void> {
    const alive = this.pods.map((p) => p.alive);
    await Promise.all([this.eachClient('pods', { alive, routes: this.routes() }), this.eachPublisher('pods', { alive })]);
  }

  /** A pod listens elsewhere now (a baseline pod restarted): its proxies follow it. */
  async podMoved(j: number): Promise<void> {
    const port = Number(new URL(this.pods[j].url).port);
    await Promise.all((this.proxies?.[j] ?? []).map((p) => p.request('retarget', { port })));
  }

  async snapshot(): Promise<Snapshot> {
    const [clientStats, publisherStats, redisCpu] = await Promise.all([
      this.eachClient<ClientStats>('stats'),
      this.eachPublisher<{ sent: number; errors: number }>('stats'),
      redisCpuUs(this.redis),
    ]);
    return {
      atUs: nowUs(),
      podCpuUs: this.pods.map((p) => (p.alive ? procCpuUs(p.pid) : Number.NaN)),
      redisCpuUs: redisCpu,
      clientCpuUs: this.clients.reduce((sum, c) => sum + procCpuUs(c.pid), 0),
      publisherCpuUs: this.publishers.reduce((sum, p) => sum + procCpuUs(p.pid), 0),
      published: publisherStats.reduce((sum, s) => sum + s.sent, 0),
      publishErrors: publisherStats.reduce((sum, s) => sum + s.errors, 0),
      clients: sumStats(clientStats),
    };
  }

  /**
   * The clients' histograms merged (and reset, to start the next phase): publish → deliver
   * latency, the latency of replayed events, resubscribe → ack, or lost → back (recovery).
   */
  async histogram(reset: boolean, which: 'latency' | 'replay' | 'resubscribe' | 'recovery' = 'latency'): Promise<Histogram> {
    const merged = new Histogram();
    for (const h of await this.eachClient<{ counts: Uint32Array; total: number; maxUs: number }>('histogram', { reset, which })) merged.merge(h);
    return merged;
  }

  async teardown(): Promise<void> {
    await this.eachClient('close').catch(() => undefined);
    const helpers = [...this.clients, ...this.publishers, ...this.proxyList];
    for (const helper of helpers) helper.kill();
    // Pods started with node flags (a CPU profile) stop gracefully, so the profile is written.
    await Promise.all(this.pods.map((p) => (process.env.POD_NODE_ARGS ? p.stop() : p.kill())));
    await Promise.all(helpers.map((h) => h.exited));
    this.redis.disconnect();
    await this.redisServer.dispose();
    this.forgetRedis();
  }
}

export function streamNames(cfg: LoadConfig): string[] {
  const names = Array.from({ length: cfg.streams }, (_, i) => `bot:load-${i}`);
  return cfg.hotEvery > 0 ? [...names, 'bot:load-hot'] : names;
}

/** Adds up the clients' counters (numbers, and per-pod arrays element by element). */
function sumStats(all: ClientStats[]): ClientStats {
  if (all.length === 0) return {} as ClientStats;
  const total = { ...all[0], perPod: [...all[0].perPod] };
  for (const s of all.slice(1)) {
    for (const [key, value] of Object.entries(s)) {
      if (key === 'perPod') (value as number[]).forEach((v, j) => (total.perPod[j] += v));
      else if (key === 'lastRecoveredUs') total.lastRecoveredUs = Math.max(total.lastRecoveredUs, value as number);
      else (total as unknown as Record<string, number>)[key] += value as number;
    }
  }
  return total;
}

function fork(name: string, script: string, env: Record<string, string>, nodeFlags: string[] = []): HelperProcess {
  const helper = HelperProcess.fork(name, join(__dirname, script), env, nodeFlags);
  everything.add(helper);
  void helper.exited.then(() => everything.delete(helper));
  return helper;
}

async function redisPid(redis: Redis): Promise<number> {
  return Number(/^process_id:(\d+)/m.exec(await redis.info('server'))?.[1]);
}

async function gatewayPod(redisUrl: string, i: number): Promise<Pod> {
  // Drain as in production (the config's default): 500 sockets let go every 100 ms.
  const app: AppProcess = await startGateway({ redisUrl, env: { DRAIN_BATCH_INTERVAL_MS: '100' } }, `load-gw-${i + 1}`);
  everything.add(app);
  let forget = reaped(app.pid);
  const pod: Pod = {
    name: `load-gw-${i + 1}`,
    url: app.url,
    pid: app.pid ?? -1,
    alive: true,
    kill: async () => {
      pod.alive = false;
      await app.kill();
      forget();
    },
    stop: async () => {
      pod.alive = false;
      const code = await app.stop();
      forget();
      return code;
    },
    start: async () => {
      await app.start();
      forget = reaped(app.pid);
      pod.pid = app.pid ?? -1;
      pod.alive = true;
    },
  };
  return pod;
}

async function baselinePod(redisUrl: string, i: number): Promise<Pod> {
  const launch = async () => {
    const nodeFlags = process.env.POD_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const helper = fork(
      `baseline-${i + 1}`,
      relative(__dirname, plainScript(join(__dirname, '..', 'bench', 'baseline-server.ts'))),
      { REDIS_URL: redisUrl },
      nodeFlags,
    );
    const { port } = await helper.started(60_000);
    return { helper, url: `http://127.0.0.1:${Number(port)}` };
  };
  let { helper, url } = await launch();
  const pod: Pod = {
    name: `baseline-${i + 1}`,
    url,
    pid: helper.pid,
    alive: true,
    kill: async () => {
      pod.alive = false;
      helper.kill();
      await helper.exited;
    },
    stop: async () => {
      pod.alive = false;
      // socket.io has no drain of its own: the process ends at once, its sockets with it.
      helper.child.kill('SIGTERM');
      return helper.exited;
    },
    start: async () => {
      ({ helper, url } = await launch());
      pod.url = url;
      pod.pid = helper.pid;
      pod.alive = true;
    },
  };
  return pod;
}
