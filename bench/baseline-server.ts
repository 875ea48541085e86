import { createServer } from 'node:http';
import { createShardedAdapter } from '@socket.io/redis-adapter';
import Redis from 'ioredis';
import { Server } from 'socket.io';
import { cpuNow, serveRequests } from './common';

/**
 * The baseline "pod": a plain socket.io 4.8.3 server with the sharded Redis adapter in
 * dynamic mode (one channel per room, so it only hears rooms it holds). No auth, no
 * sequencing, no history — sockets send `join` and are put in the room. Engine options
 * match the gateway's (websocket only, no compression, same heartbeat), so the two differ
 * in what happens per event, not in transport settings. It runs built, on plain node, as the
 * gateway does (see `plainScript` in ./plain-script): it imports packages and ./common only.
 */
async function main(): Promise<void> {
  const redisUrl = process.env.REDIS_URL ?? '';
  const pub = new Redis(redisUrl);
  const sub = new Redis(redisUrl);
  await Promise.all([pub, sub].map((redis) => new Promise((resolve, reject) => redis.once('ready', resolve).once('end', reject))));

  const http = createServer();
  const io = new Server(http, {
    path: '/socket.io',
    transports: ['websocket'],
    perMessageDeflate: false,
    pingInterval: 25_000,
    pingTimeout: 20_000,
    connectTimeout: 10_000,
    adapter: createShardedAdapter(pub, sub, { subscriptionMode: 'dynamic' }),
  });
  io.on('connection', (socket) => {
    socket.on('join', (room: unknown, ack?: (reply: { ok: boolean }) => void) => {
      if (typeof room !== 'string') return ack?.({ ok: false });
      void socket.join(room);
      ack?.({ ok: true });
    });
  });

  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const address = http.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  serveRequests({
    cpu: () => cpuNow(),
    sockets: () => io.engine.clientsCount,
  });
  // No drain (socket.io has none), but a normal exit, so node flags such as --cpu-prof write their output.
  process.once('SIGTERM', () => process.exit(0));
  process.send?.({ ready: true, port });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
