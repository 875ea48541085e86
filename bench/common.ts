import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type Redis from 'ioredis';

/**
 * Shared by the bench driver and its child processes: the clock, the payload and a tiny
 * request/response protocol over the Node IPC channel.
 */

/**
 * CLOCK_MONOTONIC in microseconds. It is system-wide on Linux, so a timestamp taken in the
 * publisher process can be subtracted from one taken in a client process.
 */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Application payload of every bench event, identical on both paths. */
export interface BenchPayload {
  runId: string;
  sessionId: string;
  content: string;
  /** Publish time, {@link nowUs}. */
  sentUs: number;
  n: number;
}

export const CONTENT_BYTES = 256;
const CONTENT = 'x'.repeat(CONTENT_BYTES);

export function benchPayload(n: number): BenchPayload {
  return { runId: 'bench-run', sessionId: 'bench-session', content: CONTENT, sentUs: nowUs(), n };
}

export interface CpuSample {
  userUs: number;
  systemUs: number;
}

export function cpuNow(): CpuSample {
  const { user, system } = process.cpuUsage();
  return { userUs: user, systemUs: system };
}

interface Request {
  rid: number;
  cmd: string;
  [key: string]: unknown;
}

interface Reply {
  rid: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

type Handler = (request: Record<string, unknown>) => unknown;

/**
 * Child side: answers the driver's requests. A child also dies with its driver (the IPC
 * channel closes), so a crashed or killed driver leaves nothing behind.
 */
export function serveRequests(handlers: Record<string, Handler>): void {
  const send = process.send?.bind(process);
  if (!send) throw new Error('bench helper scripts run as forked children of bench/run.ts');
  process.on('disconnect', () => process.exit(0));
  process.on('message', (raw: unknown) => {
    const request = raw as Request;
    if (typeof request?.rid !== 'number') return;
    const handler = handlers[request.cmd];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown command ${request.cmd}`);
        return handler(request);
      })
      .then(
        (result) => send({ rid: request.rid, ok: true, result } satisfies Reply),
        (error: unknown) =>
          send({ rid: request.rid, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies Reply),
      );
  });
}

/** Driver side of a forked helper script. */
export class HelperProcess {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private output = '';
  readonly exited: Promise<number | null>;
  private readyInfo: ((info: Record<string, unknown>) => void) | null = null;
  /** The child's one unsolicited message `{ ready: true, … }`, sent once it can take requests. */
  readonly ready: Promise<Record<string, unknown>>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.ready = new Promise((resolve) => (this.readyInfo = resolve));
    child.on('message', (raw: unknown) => {
      if ((raw as { ready?: unknown })?.ready === true) return this.readyInfo?.(raw as Record<string, unknown>);
      const reply = raw as Reply;
      const entry = this.waiting.get(reply.rid);
      if (!entry) return;
      this.waiting.delete(reply.rid);
      if (reply.ok) entry.resolve(reply.result);
      else entry.reject(new Error(`${this.name}: ${reply.error}`));
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        for (const entry of this.waiting.values()) entry.reject(new Error(`${this.name} exited (${code}):\n${this.output.slice(-4000)}`));
        this.waiting.clear();
        resolve(code);
      }),
    );
  }

  /**
   * Forks a bench script: a `.ts` one with the driver's own `-r ts-node/register …` flags, a
   * `.js` one (see plainScript in ./plain-script) on plain node.
   */
  static fork(name: string, script: string, env: Record<string, string>, nodeFlags: string[] = []): HelperProcess {
    const child = fork(script, [], {
      execArgv: script.endsWith('.js') ? nodeFlags : [...process.execArgv, ...nodeFlags],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Structured clone: latency samples travel as typed arrays, not JSON text.
      serialization: 'advanced',
    });
    return new HelperProcess(name, child);
  }

  /** Waits for the ready message; fails if the child exits or takes longer than `timeoutMs`. */
  async started(timeoutMs = 30_000): Promise<Record<string, unknown>> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.ready,
        this.exited.then((code) => {
          throw new Error(`${this.name} exited (${code}) during start:\n${this.output.slice(-4000)}`);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${this.name} not ready after ${timeoutMs} ms:\n${this.output.slice(-4000)}`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get logs(): string {
    return this.output;
  }

  request<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const rid = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        reject(new Error(`${this.name}: '${cmd}' got no answer in ${timeoutMs} ms\n${this.output.slice(-4000)}`));
      }, timeoutMs);
      this.waiting.set(rid, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ rid, cmd, ...args } satisfies Request);
    });
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** Resident memory of a process, KB (VmRSS from /proc/<pid>/status). */
export function rssKb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

/** Redis's own CPU time so far (user + system, `INFO cpu`), µs. */
export async function redisCpuUs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return Math.round((field('used_cpu_user') + field('used_cpu_sys')) * 1e6);
}
