import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, killOnExit, waitFor } from '@app/runtime';
import { TEST_API_KEY, TEST_JWT_SECRET } from './tokens';

const ROOT = join(__dirname, '..', '..');

/**
 * A gateway or worker started from the build (`dist/apps/*`), as its own process, the way
 * production runs it. Output is kept for the failure message of a test that times out.
 */
export class AppProcess {
  private child: ChildProcess | null = null;
  private output = '';
  private exited: Promise<number | null> = Promise.resolve(null);

  constructor(
    readonly kind: 'gateway' | 'worker',
    readonly env: Record<string, string>,
    readonly port: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get logs(): string {
    return this.output;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** The process id while running (for /proc reads in the benchmark). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<this> {
    const main = join(ROOT, 'dist', 'apps', this.kind, 'main.js');
    if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build first`);
    // POD_NODE_ARGS: node flags for every app process, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` (not allowed in NODE_OPTIONS).
    const nodeArgs = process.env.POD_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const child = spawn(process.execPath, [...nodeArgs, main], {
      env: { PATH: process.env.PATH ?? '', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.output = '';
    // Never outlive the test process, even when it is killed between tests.
    killOnExit(child);
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-200_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        if (this.child === child) this.child = null;
        resolve(code);
      }),
    );
    await waitFor(
      async () => {
        if (!this.child) throw new Error(`${this.kind} exited during start:\n${this.output.slice(-4000)}`);
        const response = await fetch(`${this.url}/readyz`, { headers: { connection: 'close' } }).catch(() => null);
        return response?.status === 200;
      },
      { timeoutMs: 30_000, intervalMs: 50, message: `${this.kind} on port ${this.port} to be ready` },
    ).catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n--- ${this.kind} output ---\n${this.output.slice(-4000)}`);
    });
    return this;
  }

  /** SIGTERM (graceful drain) and wait for the exit. */
  async stop(): Promise<number | null> {
    if (!this.child) return this.exited;
    this.child.kill('SIGTERM');
    return this.exited;
  }

  /** SIGKILL: the pod dies with no goodbye. The signal is sent before the first await. */
  async kill(): Promise<void> {
    if (!this.child) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

export interface ClusterOptions {
  redisUrl: string;
  env?: Record<string, string>;
}

export async function startGateway({ redisUrl, env = {} }: ClusterOptions, serverId?: string): Promise<AppProcess> {
  const port = await freePort();
  return new AppProcess(
    'gateway',
    {
      REDIS_URL: redisUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      JWT_SECRET: TEST_JWT_SECRET,
      API_KEYS: TEST_API_KEY,
      LOG_LEVEL: 'warn',
      TRANSPORTS: 'websocket',
      DRAIN_BATCH_INTERVAL_MS: '0',
      ...(serverId ? { SERVER_ID: serverId } : {}),
      ...env,
    },
    port,
  ).start();
}

export async function startWorker({ redisUrl, env = {} }: ClusterOptions): Promise<AppProcess> {
  const port = await freePort();
  return new AppProcess('worker', { REDIS_URL: redisUrl, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env }, port).start();
}
