import { acquireRedis, type AcquiredRedis, waitFor } from '@app/runtime';
import { publishHttp } from './support/http';
import { type AppProcess, startGateway, startWorker } from './support/processes';
import { connectSocket, seqsOf } from './support/sockets';
import { signToken } from './support/tokens';

let redis: AcquiredRedis;
let gateway: AppProcess;
let worker: AppProcess;
beforeAll(async () => {
  redis = await acquireRedis({ ownServer: true });
  [gateway, worker] = await Promise.all([startGateway({ redisUrl: redis.url }), startWorker({ redisUrl: redis.url })]);
});
afterAll(async () => {
  await Promise.all([gateway?.stop(), worker?.stop()]);
  await redis?.release();
});

it('smoke: subscribe, publish over HTTP, receive', async () => {
  const client = await connectSocket(gateway.url, await signToken());
  expect(client.hello.protocol).toBe(1);
  const ack = await client.command('subscribe', { stream: 'bot:smoke' });
  expect(ack).toMatchObject({ ok: true, result: { stream: 'bot:smoke', seq: 0, replayed: 0 } });
  const published = await publishHttp(gateway.url, 'bot:smoke', { type: 'session_created', payload: { sessionId: 's1', title: 'hi' } });
  expect(published).toMatchObject({ status: 201, body: { seq: 1 } });
  await waitFor(() => client.events.length === 1);
  expect(seqsOf(client.events, 'bot:smoke')).toEqual([1]);
  const chat = await client.command('chat', { botId: 'smoke', content: 'hello there' });
  expect(chat).toMatchObject({ ok: true });
  await waitFor(() => client.events.some((e) => e.type === 'done'), { message: 'done' });
  client.close();
});
