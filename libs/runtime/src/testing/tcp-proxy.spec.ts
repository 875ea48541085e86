import { connect, createServer, type Server, type Socket } from 'node:net';
import { TcpProxy } from './tcp-proxy';
import { waitFor } from './wait';

/** An echo server behind the proxy; each test talks to it through the proxy. */
let echo: Server;
let echoPort: number;
let proxy: TcpProxy;
const clients: Socket[] = [];

beforeEach(async () => {
  echo = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  echoPort = (echo.address() as { port: number }).port;
  proxy = await TcpProxy.start({ target: { port: echoPort } });
});

afterEach(async () => {
  clients.splice(0).forEach((c) => c.destroy());
  await proxy.close();
  await new Promise<void>((resolve) => echo.close(() => resolve()));
});

interface Outcome {
  socket: Socket;
  received: string;
  closed: boolean;
  error?: string;
}

/** A client of the proxy that records what comes back and how it ended. */
function dial(): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: proxy.port });
    clients.push(socket);
    const outcome: Outcome = { socket, received: '', closed: false };
    socket.on('data', (chunk) => (outcome.received += chunk.toString()));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      outcome.error = error.code;
      resolve(outcome);
    });
    socket.on('close', () => {
      outcome.closed = true;
      resolve(outcome);
    });
    socket.on('connect', () => resolve(outcome));
  });
}

async function roundTrip(outcome: Outcome, text: string): Promise<void> {
  outcome.socket.write(text);
  await waitFor(() => outcome.received.endsWith(text), { timeoutMs: 2_000, message: `echo of ${text}` });
}

it('forwards both ways and lists its connections', async () => {
  const a = await dial();
  const b = await dial();
  await roundTrip(a, 'hello');
  await roundTrip(b, 'world');
  await waitFor(() => proxy.connections().length === 2);
  expect(proxy.stats).toMatchObject({ accepted: 2, forceClosed: 0 });
  a.socket.end();
  await waitFor(() => proxy.connections().length === 1, { message: 'a closed end to end' });
});

it('force-closes one connection with a reset, leaving the others', async () => {
  const a = await dial();
  const b = await dial();
  await roundTrip(a, 'x');
  await roundTrip(b, 'y');
  proxy.connections()[0].destroy();
  await waitFor(() => a.closed, { message: 'a reset' });
  expect(a.error).toBe('ECONNRESET');
  await roundTrip(b, 'still here');
  expect(proxy.stats.forceClosed).toBe(1);
});

it.each(['refuse', 'reset'] as const)('drop(ms, %s) resets what is open, turns new connections away, then forwards again', async (mode) => {
  const open = await dial();
  await roundTrip(open, 'before');
  const dropped = proxy.drop(400, { mode });
  await waitFor(() => open.closed, { message: 'the open connection reset' });
  expect(proxy.dropped).toBe(true);
  const during = await dial();
  await waitFor(() => during.closed || during.error !== undefined, { message: 'turned away' });
  expect(during.received).toBe('');
  if (mode === 'refuse') expect(during.error).toBe('ECONNREFUSED');
  await dropped;
  expect(proxy.dropped).toBe(false);
  const after = await dial();
  await roundTrip(after, 'after');
});

it('a blackhole holds new connections in silence and forwards them once the path is back', async () => {
  const dropped = proxy.drop(300, { mode: 'blackhole' });
  const held = await dial();
  held.socket.write('late');
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(held.received).toBe('');
  await dropped;
  await waitFor(() => held.received === 'late', { timeoutMs: 2_000, message: 'the held bytes delivered' });
  expect(proxy.stats).toMatchObject({ turnedAway: 1, forwardedLate: 1 });
});

it('a connection whose target is down is closed, and counted', async () => {
  proxy.retarget({ port: 1 });
  const outcome = await dial();
  await waitFor(() => outcome.closed, { message: 'closed' });
  expect(proxy.stats.targetErrors).toBe(1);
});
