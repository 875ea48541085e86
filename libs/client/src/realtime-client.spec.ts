import { ErrorCode, type HelloPayload, ProtocolError } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { RealtimeClient, type RealtimeClientOptions } from './realtime-client';
import type { TransportFactory, TransportHandlers, TransportTarget } from './transport';

/**
 * The client's reconnect policy, whatever the wire: driven through the transport seam by a
 * scripted transport, so each close reason can be given exactly (end-to-end tests run the
 * same policy over Socket.IO and `/ws` against real pods).
 */
interface Opened {
  target: TransportTarget;
  handlers: TransportHandlers;
  closedByClient: boolean;
}

function scripted(): { factory: TransportFactory; opened: Opened[] } {
  const opened: Opened[] = [];
  const factory: TransportFactory = (target, handlers) => {
    const entry: Opened = { target, handlers, closedByClient: false };
    opened.push(entry);
    return {
      send: () => undefined,
      close: () => {
        entry.closedByClient = true;
      },
    };
  };
  return { factory, opened };
}

const HELLO: HelloPayload = {
  protocol: 1,
  connectionId: 'c',
  serverId: 'pod-1',
  heartbeatMs: 25_000,
  limits: { maxPayloadBytes: 1000, commandsPerSecond: 20 },
};
// Backoff this long never elapses within a test: a reconnect that happens came at once.
const SLOW_BACKOFF = { baseMs: 600_000, maxMs: 600_000 };
const clients: RealtimeClient[] = [];
afterEach(() => clients.splice(0).forEach((c) => c.close()));

function client(options: Partial<RealtimeClientOptions> & Pick<RealtimeClientOptions, 'transport'>): RealtimeClient {
  const made = new RealtimeClient({ url: ['http://a', 'http://b', 'http://c'], token: 'jwt', backoff: SLOW_BACKOFF, ...options });
  clients.push(made);
  return made;
}

/** Lets pending promise callbacks and zero-delay timers run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('RealtimeClient reconnect policy', () => {
  it('goes to the next URL at once when a pod is draining, until every URL was tried since the last hello', async () => {
    const { factory, opened } = scripted();
    client({ transport: factory });
    await waitFor(() => opened.length === 1);
    opened[0].handlers.closed({ reason: 'elsewhere' });
    await waitFor(() => opened.length === 2);
    opened[1].handlers.closed({ reason: 'elsewhere' });
    await waitFor(() => opened.length === 3);
    expect(opened.map((o) => o.target.url)).toEqual(['http://a', 'http://b', 'http://c']);
    // All three refused: now it backs off instead of going round at full speed.
    opened[2].handlers.closed({ reason: 'elsewhere' });
    await settle();
    expect(opened).toHaveLength(3);
  });

  it('with a single URL (a load balancer) it retries at once only the first time', async () => {
    const { factory, opened } = scripted();
    client({ transport: factory, url: 'http://lb' });
    await waitFor(() => opened.length === 1);
    opened[0].handlers.closed({ reason: 'elsewhere' });
    await waitFor(() => opened.length === 2);
    opened[1].handlers.closed({ reason: 'elsewhere' });
    await settle();
    expect(opened.map((o) => o.target.url)).toEqual(['http://lb', 'http://lb']);
  });

  it('after a hello, a draining notice drops the connection and reconnects to the next URL after the notice’s delay', async () => {
    const { factory, opened } = scripted();
    const sdk = client({ transport: factory });
    await waitFor(() => opened.length === 1);
    opened[0].handlers.hello(HELLO);
    expect(sdk.status).toBe('connected');
    opened[0].handlers.draining({ serverId: 'pod-1', reconnectInMs: 0 });
    expect(opened[0].closedByClient).toBe(true);
    await waitFor(() => opened.length === 2);
    expect(opened[1].target.url).toBe('http://b');
  });

  it('stops on a refused fixed token, and asks a token function again instead', async () => {
    const fixed = scripted();
    const stopped = client({ transport: fixed.factory });
    const errors: ProtocolError[] = [];
    stopped.on('error', (e) => errors.push(e));
    await waitFor(() => fixed.opened.length === 1);
    fixed.opened[0].handlers.closed({ reason: 'unauthorized', message: 'token expired' });
    expect(stopped.status).toBe('closed');
    expect(errors).toEqual([new ProtocolError(ErrorCode.UNAUTHORIZED, 'token expired')]);

    const refreshing = scripted();
    let issued = 0;
    const sdk = client({ transport: refreshing.factory, token: () => `jwt-${++issued}`, backoff: { baseMs: 1, maxMs: 1 } });
    await waitFor(() => refreshing.opened.length === 1);
    refreshing.opened[0].handlers.closed({ reason: 'unauthorized', message: 'token expired' });
    await waitFor(() => refreshing.opened.length === 2);
    expect(refreshing.opened.map((o) => o.target.token)).toEqual(['jwt-1', 'jwt-2']);
    expect(sdk.status).toBe('reconnecting');
  });

  it('backs off after a lost connection, and ignores what a dropped connection reports later', async () => {
    const { factory, opened } = scripted();
    const sdk = client({ transport: factory });
    await waitFor(() => opened.length === 1);
    opened[0].handlers.hello(HELLO);
    opened[0].handlers.closed({ reason: 'lost', message: 'closed 1006' });
    await settle();
    expect(opened).toHaveLength(1);
    expect(sdk.status).toBe('reconnecting');
    // Late reports of the dropped connection change nothing.
    opened[0].handlers.hello(HELLO);
    opened[0].handlers.closed({ reason: 'elsewhere' });
    await settle();
    expect({ status: sdk.status, opened: opened.length }).toEqual({ status: 'reconnecting', opened: 1 });
  });

  it('refuses an unknown transport name at construction', () => {
    expect(() => new RealtimeClient({ url: 'http://a', token: 'jwt', transport: 'carrier-pigeon' as 'websocket' })).toThrow(/unknown transport carrier-pigeon/);
  });

  it('fails with VALIDATION_FAILED, closed, when the transport cannot even open (a URL the WebSocket class refuses)', async () => {
    const errors: ProtocolError[] = [];
    const made = client({
      transport: () => {
        throw new SyntaxError("Failed to construct 'WebSocket': The URL 'localhost:3000' is invalid.");
      },
    });
    made.on('error', (error) => errors.push(error));
    await waitFor(() => errors.length === 1);
    expect(errors[0]).toMatchObject({ code: ErrorCode.VALIDATION_FAILED });
    expect(errors[0].message).toContain('cannot connect to http://a');
    expect(made.status).toBe('closed');
  });
});
