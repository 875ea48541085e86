import { createServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, connect as connectTcp, type Socket as NetSocket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import { holdFirstFlush, joinUpgradeWrites, releaseFirstFlush } from './first-flush';
import type { GatewayServer, GatewaySocket } from './socket.types';

/**
 * A real Socket.IO server and client over loopback: what the server's TCP socket is asked to
 * write between the handshake and `hello`, with and without the first-flush hold.
 */
let http: HttpServer;
let server: Server;
let client: ClientSocket | undefined;
/** Writes (write or writev calls) each server-side TCP socket made since the engine connection opened. */
const writes = new Map<string, number>();

beforeEach(async () => {
  http = createServer();
  server = new Server(http, { transports: ['websocket'] });
  server.engine.on('connection', (conn: { id: string; transport: { socket?: { _socket?: NetSocket } } }) => {
    const tcp = conn.transport.socket?._socket as (NetSocket & { _writeGeneric: (...args: unknown[]) => unknown }) | undefined;
    if (!tcp) return;
    writes.set(conn.id, 0);
    const write = tcp._writeGeneric.bind(tcp);
    tcp._writeGeneric = (...args: unknown[]) => {
      writes.set(conn.id, (writes.get(conn.id) ?? 0) + 1);
      return write(...args);
    };
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
});
afterEach(async () => {
  client?.close();
  await server.close();
});

async function helloAfterConnect(hold: boolean): Promise<{ writes: number; events: string[] }> {
  if (hold) server.use((socket, next) => holdFirstFlush(socket as unknown as GatewaySocket, next));
  server.on('connection', (socket) => {
    try {
      socket.emit('hello', { serverId: 'pod-1' });
    } finally {
      if (hold) releaseFirstFlush(socket as unknown as GatewaySocket);
    }
  });
  const { port } = http.address() as AddressInfo;
  client = connect(`http://127.0.0.1:${port}`, { transports: ['websocket'] });
  const events: string[] = [];
  client.on('connect', () => events.push('connect'));
  await new Promise<void>((resolve) => client?.on('hello', () => resolve(void events.push('hello'))));
  const id = (client.io.engine as unknown as { id: string }).id;
  // The engine's open packet was written on its own before the connection was known here.
  return { writes: writes.get(id) ?? -1, events };
}

it('CONNECT and hello leave in one write when the first flush is held', async () => {
  await expect(helloAfterConnect(true)).resolves.toEqual({ writes: 1, events: ['connect', 'hello'] });
});

it('without the hold they are two writes (what the hold saves)', async () => {
  await expect(helloAfterConnect(false)).resolves.toEqual({ writes: 2, events: ['connect', 'hello'] });
});

it('a connection the hold did not take is left as it is', () => {
  const conn = { transport: { name: 'polling', writable: true }, flush: jest.fn() };
  const socket = { conn } as unknown as GatewaySocket;
  const next = jest.fn();
  holdFirstFlush(socket, next);
  expect(next).toHaveBeenCalledWith();
  expect(conn.transport.writable).toBe(true);
  releaseFirstFlush(socket);
  expect(conn.flush).not.toHaveBeenCalled();
});

/** Writes the server's TCP socket made from the upgrade until the client saw CONNECT (101, open, CONNECT). */
async function writesUntilConnected(join: boolean): Promise<number> {
  let count = 0;
  // Prepended after joinUpgradeWrites, so it runs first: every write of the upgrade is counted.
  if (join) joinUpgradeWrites(server as unknown as GatewayServer);
  http.prependListener('upgrade', (_request: unknown, socket: Duplex) => {
    const tcp = socket as NetSocket & { _writeGeneric: (...args: unknown[]) => unknown };
    const write = tcp._writeGeneric.bind(tcp);
    tcp._writeGeneric = (...args: unknown[]) => {
      count++;
      return write(...args);
    };
  });
  const { port } = http.address() as AddressInfo;
  client = connect(`http://127.0.0.1:${port}`, { transports: ['websocket'] });
  await new Promise<void>((resolve) => client?.on('connect', resolve));
  return count;
}

it('the 101 response and the open packet leave in one write when upgrades are joined', async () => {
  await expect(writesUntilConnected(true)).resolves.toBe(2);
});

it('without the join the 101 and the open packet are two writes (what the join saves)', async () => {
  await expect(writesUntilConnected(false)).resolves.toBe(3);
});

it('an upgrade engine.io refuses still gets its 400 when upgrades are joined', async () => {
  joinUpgradeWrites(server as unknown as GatewayServer);
  const { port } = http.address() as AddressInfo;
  const tcp = connectTcp(port, '127.0.0.1');
  let answer = '';
  tcp.on('data', (chunk: Buffer) => (answer += chunk.toString()));
  tcp.write(
    'GET /socket.io/?EIO=4&transport=websocket&sid=no-such-session HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  await new Promise((resolve) => tcp.on('close', resolve));
  expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*Session ID unknown/);
});
