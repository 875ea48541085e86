import { createServer } from 'node:http';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * The baseline for `/ws` memory (bench/plain-ws-memory.ts): a bare `ws` server doing the least
 * a pod must per connection — read the token from the query (not checked), greet, and put the
 * connection in a room on `subscribe`, acking it; ping every 25 s as the gateway does. Same
 * `ws` settings as the gateway's plain endpoint (no compression). Runs built, on plain node.
 */
const rooms = new Map<string, Set<WebSocket>>();
const http = createServer();
const wss = new WebSocketServer({ server: http, path: '/ws', perMessageDeflate: false });
wss.on('connection', (ws, request) => {
  const token = new URL(request.url ?? '/', 'http://x').searchParams.get('token');
  if (!token) return ws.close(4401, 'UNAUTHORIZED');
  ws.send(JSON.stringify({ kind: 'hello', protocol: 1, connectionId: Math.random().toString(36).slice(2), serverId: 'bare' }));
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as { id: string; type: string; payload: { stream: string } };
    if (frame.type !== 'subscribe') return;
    let room = rooms.get(frame.payload.stream);
    if (!room) rooms.set(frame.payload.stream, (room = new Set()));
    room.add(ws);
    ws.send(JSON.stringify({ kind: 'ack', id: frame.id, ok: true, result: { stream: frame.payload.stream, seq: 0 } }));
  });
  ws.on('close', () => rooms.forEach((room) => room.delete(ws)));
});
setInterval(() => wss.clients.forEach((ws) => ws.ping()), 25_000).unref();
http.listen(0, '127.0.0.1', () => {
  const address = http.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
});
