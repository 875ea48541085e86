import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killOnExit } from './kill-on-exit';

/** How long a SIGTERM'd server gets to exit before it is killed. */
const STOP_GRACE_MS = 20_000;

/**
 * A private `redis-server` process on a free loopback port: the embedded default of
 * `npm start` and the Redis of every test. It can be stopped and started again on the same
 * port (with or without its data) to test what a Redis restart does to the system.
 */
export interface RedisServerOptions {
  /** Keep data across restarts (append-only file in the data directory). Default true. */
  persistent?: boolean;
  /** Extra `redis-server` arguments, e.g. `['--maxmemory', '64mb']`. */
  args?: string[];
  binary?: string;
  /** Keep data in this directory (kept on dispose) instead of a temporary one. */
  dataDir?: string;
  /** Listen on this port instead of a free one the OS picks (a cluster node needs port + 10000 free too). */
  port?: number;
  /**
   * Run in its own process group, so a Ctrl-C in the terminal reaches only the parent, which
   * then stops Redis after the processes that use it (the embedded launcher). Default false.
   */
  detached?: boolean;
}

export class RedisServerProcess {
  private child: ChildProcess | null = null;
  private readonly dir: string;
  private readonly ownsDir: boolean;

  private constructor(
    readonly port: number,
    private readonly options: Required<Omit<RedisServerOptions, 'dataDir' | 'port'>> & Pick<RedisServerOptions, 'dataDir'>,
  ) {
    this.ownsDir = !options.dataDir;
    this.dir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'rtgw-redis-'));
    mkdirSync(this.dir, { recursive: true });
  }

  static isAvailable(binary = 'redis-server'): boolean {
    return spawnSync(binary, ['--version'], { stdio: 'ignore' }).status === 0;
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServerProcess> {
    const { port, ...rest } = options;
    const resolved = { persistent: true, args: [], binary: 'redis-server', detached: false, ...rest };
    // A free port can be taken between the probe and the bind: try a few.
    let lastError: unknown;
    for (let attempt = 0; attempt < (port ? 1 : 5); attempt++) {
      const server = new RedisServerProcess(port ?? (await freePort()), resolved);
      try {
        await server.launch();
        return server;
      } catch (error) {
        lastError = error;
        server.removeData();
      }
    }
    throw lastError;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Stops the server (SIGKILL when `hard`, which skips the final AOF flush). */
  async stop(hard = false): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(hard ? 'SIGKILL' : 'SIGTERM');
    // A graceful stop may wait for replicas (shutdown-timeout) and the AOF; never for ever.
    const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(kill);
  }

  /** Starts the stopped server again on the same port; `wipe` drops its data first. */
  async restart({ wipe = false, keep = [] as string[] } = {}): Promise<void> {
    await this.stop();
    if (wipe) this.removeData(true, keep);
    await this.launch();
  }

  async dispose(): Promise<void> {
    await this.stop(true);
    this.removeData();
  }

  private launch(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--save',
      '',
      '--appendonly',
      this.options.persistent ? 'yes' : 'no',
      '--appendfsync',
      'always',
      '--daemonize',
      'no',
      // The ready line is logged at `notice`.
      '--loglevel',
      'notice',
      '--logfile',
      '',
      ...this.options.args,
    ];
    const child = spawn(this.options.binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: this.options.detached });
    this.child = child;
    // A private Redis never outlives the process that started it, however that one ends.
    killOnExit(child);
    return new Promise<void>((resolve, reject) => {
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          cleanup();
          resolve();
        }
      };
      const onExit = (code: number | null) => {
        cleanup();
        this.child = null;
        reject(new Error(`redis-server on port ${this.port} exited (${code}) before it was ready:\n${output}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        // Not left running: the caller tries another port, and nothing would stop this one.
        child.kill('SIGKILL');
        this.child = null;
        reject(new Error(`redis-server on port ${this.port} not ready after 10 s:\n${output}`));
      }, 10_000);
      const cleanup = () => {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.once('exit', onExit);
    });
  }

  /** Deletes the data directory, or only its contents but the files named in `keep`. */
  private removeData(keepDir = false, keep: string[] = []): void {
    if (!this.ownsDir && !keepDir) return;
    if (!keepDir) return rmSync(this.dir, { recursive: true, force: true });
    for (const entry of readdirSync(this.dir)) if (!keep.includes(entry)) rmSync(join(this.dir, entry), { recursive: true, force: true });
  }
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
