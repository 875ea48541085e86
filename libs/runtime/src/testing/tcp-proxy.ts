import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback for fault drills: it forwards every connection to one target
 * (a gateway pod, a redis-server) and can break the path on demand, the way a network
 * does — per connection (`connections()[i].destroy()`: a force-close with a TCP reset) or
 * for everything at once (`drop(ms)`: every open connection reset, then new ones refused,
 * reset or held for `ms`). Tests and the load kit put one in front of each pod.
 *
 * Only what a drill needs: no TLS, no per-byte shaping; a few µs per forwarded chunk.
 */
export type DropMode =
  /** Stop listening: connecting gets ECONNREFUSED (a host that is up, a port that is not). */
  | 'refuse'
  /** Accept, then reset at once (a middlebox that rejects the flow). */
  | 'reset'
  /**
   * Accept and hold without reading (packets into a void); when the drop ends, the held
   * connections are forwarded, late, like a SYN retransmitted after the path came back.
   */
  | 'blackhole';

export interface TcpProxyOptions {
  /** Where connections go. */
  target: { host?: string; port: number };
  /** Listen address (default 127.0.0.1) and port (default: a free one). */
  host?: string;
  port?: number;
  /**
   * Source addresses for the connections to the target, used in turn (default: none, the
   * kernel picks). A proxy forwarding thousands of connections to one target port needs them:
   * from one source address to one destination, once ~14k connections are open (half the
   * ephemeral range) every further connect() scans the taken ports, ~0.7 ms of kernel CPU each
   * and growing.
   */
  sourceAddresses?: string[];
}

/** One forwarded connection, as the drill sees it. */
export interface ProxyConnection {
  readonly id: number;
  /** `Date.now()` when the client's connection was accepted. */
  readonly openedAt: number;
  /** Force-close it: both sides get a TCP reset. */
  destroy(): void;
}

export interface TcpProxyStats {
  /** Connections forwarded to the target. */
  accepted: number;
  /** Connections closed by the proxy (`destroy`, `drop`), not by either end. */
  forceClosed: number;
  /** Connections refused, reset or held while the path was down. */
  turnedAway: number;
  /** Held connections forwarded once a blackhole ended. */
  forwardedLate: number;
  /** Connections whose target could not be reached (it was down). */
  targetErrors: number;
}

interface Pair extends ProxyConnection {
  client: Socket;
  upstream: Socket;
}

export class TcpProxy {
  private readonly pairs = new Map<number, Pair>();
  private readonly held = new Set<Socket>();
  private nextId = 1;
  private nextSource = 0;
  private down: { mode: DropMode; timer: ReturnType<typeof setTimeout>; ended: Promise<void>; end: () => void } | null = null;
  private closed = false;
  readonly stats: TcpProxyStats = { accepted: 0, forceClosed: 0, turnedAway: 0, forwardedLate: 0, targetErrors: 0 };

  private constructor(
    private server: Server,
    readonly host: string,
    readonly port: number,
    private target: { host: string; port: number },
    private readonly sourceAddresses: string[],
  ) {}

  static async start({ target, host = '127.0.0.1', port = 0, sourceAddresses = [] }: TcpProxyOptions): Promise<TcpProxy> {
    const server = createServer({ noDelay: true });
    const bound = await listen(server, host, port);
    const proxy = new TcpProxy(server, host, bound, { host: target.host ?? '127.0.0.1', port: target.port }, sourceAddresses);
    proxy.attach(server);
    return proxy;
  }

  /** `http://host:port`, for Socket.IO clients. */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** `redis://host:port`, for a proxy in front of a redis-server. */
  get redisUrl(): string {
    return `redis://${this.host}:${this.port}`;
  }

  /** True while a `drop` is in progress. */
  get dropped(): boolean {
    return this.down !== null;
  }

  /** The connections forwarded now, oldest first. */
  connections(): ProxyConnection[] {
    return [...this.pairs.values()];
  }

  /** Send new connections elsewhere (open ones stay where they are). */
  retarget(target: { host?: string; port: number }): void {
    this.target = { host: target.host ?? '127.0.0.1', port: target.port };
  }

  /** Force-closes every open connection (TCP reset both ways); answers how many. */
  resetAll(): number {
    const open = [...this.pairs.values()];
    for (const pair of open) pair.destroy();
    return open.length;
  }

  /**
   * The path goes down for `ms`: every open connection is reset, and new ones are turned
   * away as `mode` says until the drop ends. Resolves when the path is back.
   * A drop during a drop extends nothing: it waits for the current one.
   */
  async drop(ms: number, { mode = 'refuse' }: { mode?: DropMode } = {}): Promise<void> {
    if (this.closed) throw new Error('the proxy is closed');
    if (this.down) return this.down.ended;
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const timer = setTimeout(() => void this.restore(), ms);
    this.down = { mode, timer, ended, end };
    // Stop accepting first (close() resolves only once every connection is gone), then reset.
    const closing = mode === 'refuse' ? close(this.server) : null;
    this.resetAll();
    await closing;
    return ended;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.down) {
      clearTimeout(this.down.timer);
      this.down.end();
      this.down = null;
    }
    for (const socket of this.held) socket.destroy();
    this.held.clear();
    const closing = close(this.server);
    for (const pair of [...this.pairs.values()]) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.pairs.clear();
    await closing;
  }

  private async restore(): Promise<void> {
    const down = this.down;
    if (!down || this.closed) return;
    if (down.mode === 'refuse') {
      // Listen again on the same port; another process could take it in between, so retry.
      const server = createServer({ noDelay: true });
      for (let attempt = 0; ; attempt++) {
        try {
          await listen(server, this.host, this.port);
          break;
        } catch (error) {
          if (attempt >= 50) throw error;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      this.server = server;
      this.attach(server);
    }
    this.down = null;
    for (const socket of [...this.held]) {
      this.held.delete(socket);
      if (socket.destroyed) continue;
      this.stats.forwardedLate++;
      this.forward(socket);
    }
    down.end();
  }

  private attach(server: Server): void {
    server.on('connection', (client) => {
      if (this.closed) return void client.destroy();
      client.on('error', () => undefined);
      if (!this.down) return this.forward(client);
      this.stats.turnedAway++;
      if (this.down.mode === 'blackhole') {
        client.pause();
        this.held.add(client);
        client.once('close', () => this.held.delete(client));
      } else {
        client.resetAndDestroy();
      }
    });
    server.on('error', () => undefined);
  }

  private forward(client: Socket): void {
    const localAddress = this.sourceAddresses.length > 0 ? this.sourceAddresses[this.nextSource++ % this.sourceAddresses.length] : undefined;
    const upstream = connect({ host: this.target.host, port: this.target.port, noDelay: true, ...(localAddress ? { localAddress } : {}) });
    const id = this.nextId++;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.pairs.delete(id);
      client.destroy();
      upstream.destroy();
    };
    const pair: Pair = {
      id,
      openedAt: Date.now(),
      client,
      upstream,
      destroy: () => {
        if (done) return;
        this.stats.forceClosed++;
        done = true;
        this.pairs.delete(id);
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      },
    };
    this.pairs.set(id, pair);
    this.stats.accepted++;
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') this.stats.targetErrors++;
      finish();
    });
    client.on('error', finish);
    client.once('close', finish);
    upstream.once('close', finish);
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  }
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}
