import { type JsonBatch, stream as durableStream } from '@durable-streams/client';
import type { Envelope } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { openPlain } from './support/plain-ws';
import { connectSocket, range, seqsOf } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * One bot run watched by three kinds of client on three pods — a plain WebSocket (`/ws`), an
 * SSE reader using the Durable Streams protocol's own client, and Socket.IO: each sees the
 * same events, in the same order, gapless.
 */
let system: TestSystem;
beforeAll(async () => {
  system = await startSystem({ gateways: 3, workers: 1 });
});
afterAll(async () => {
  await system?.stop();
});

it('a plain WebSocket, an SSE reader (@durable-streams/client) and Socket.IO on different pods see the same run the same way', async () => {
  const stream = 'bot:every-client';
  const token = await signToken({ sub: 'watcher', scope: [stream] });

  const plain = await openPlain(system.gateways[0].url, { token });
  expect(await plain.command('subscribe', { stream })).toMatchObject({ ok: true, result: { seq: 0 } });

  const sse: Envelope[] = [];
  const reader = await durableStream<Envelope>({
    url: `${system.gateways[1].url}/v1/streams/${stream}`,
    headers: { Authorization: `Bearer ${token}` },
    offset: '-1',
    live: 'sse',
  });
  reader.subscribeJson((batch: JsonBatch<Envelope>) => void sse.push(...batch.items));

  const io = await connectSocket(system.gateways[2].url, token);
  expect(await io.command('subscribe', { stream })).toMatchObject({ ok: true });

  try {
    // The Socket.IO dashboard asks; the demo bot answers with a tool call and a streamed reply.
    expect(await io.command('chat', { botId: 'every-client', content: '/tool search {"query":"realtime"}' })).toMatchObject({ ok: true });
    const done = (events: Envelope[]) => events.some((e) => e.type === 'done');
    await waitFor(() => done(plain.events) && done(sse) && done(io.events), { message: 'done on every client', timeoutMs: 30_000 });

    const view = (events: Envelope[]) => events.map((e) => `${e.seq} ${e.type} ${e.id}`);
    const last = io.events.at(-1) as Envelope;
    expect(seqsOf(io.events, stream)).toEqual(range(1, last.seq));
    expect(view(plain.events)).toEqual(view(io.events));
    expect(view(sse)).toEqual(view(io.events));
    expect(io.events.map((e) => e.type)).toEqual(expect.arrayContaining(['run_started', 'tool_start', 'tool_end', 'message', 'usage', 'done']));
  } finally {
    reader.cancel();
    plain.close();
    io.close();
  }
});
