import { streamChannel } from '@app/backplane';
import type { PresenceChange, StreamName } from '@app/protocol';
import { acquireRedis, type AcquiredRedis, createRedis, type RedisClient, waitFor } from '@app/runtime';
import type { GatewayConfig } from '../config/gateway-config';
import type { RedisConnections } from '../redis/redis.providers';
import { PresenceService } from './presence.service';

/** Presence writes against real Redis: batched per stream, announced once per user. */
let server: AcquiredRedis;
let redis: RedisClient;
let listener: RedisClient;
const announced: Array<{ stream: string; change: PresenceChange }> = [];
beforeAll(async () => {
  server = await acquireRedis({ ownServer: true, persistent: false });
  redis = createRedis({ url: server.url, role: 'test' });
  listener = createRedis({ url: server.url, role: 'test' });
  listener.on('smessage', (_channel: string, message: string) => {
    const { change } = JSON.parse(message) as { change: PresenceChange };
    announced.push({ stream: change.stream, change });
  });
});
afterAll(async () => {
  await Promise.all([redis.quit(), listener.quit()]);
  await server.release();
});

let counter = 0;
async function setup(serverId = 'pod-a') {
  const stream: StreamName = `bot:presence-${++counter}`;
  await listener.ssubscribe(streamChannel(stream));
  const calls: string[] = [];
  // Counts the script calls this pod makes on the stream, by name.
  const commands = new Proxy(redis, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof key === 'string' && key.startsWith('rtPresence') && typeof value === 'function') {
        return (...args: unknown[]) => {
          calls.push(key);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return value;
    },
  });
  const config = { serverId, presenceBeatMs: 60_000 } as GatewayConfig;
  const presence = new PresenceService({ commands } as unknown as RedisConnections, config);
  const changes = () => announced.filter((a) => a.stream === stream).map((a) => a.change);
  return { stream, presence, calls, changes };
}

describe('PresenceService', () => {
  it('writes a burst of joins and leaves as one call per stream, and announces each user once', async () => {
    const { stream, presence, calls, changes } = await setup();
    for (let i = 0; i < 50; i++) presence.join(stream, 'ann');
    presence.join(stream, 'bob');
    presence.join(stream, 'cid');
    presence.leave(stream, 'cid');
    await waitFor(async () => (await presence.members(stream)).length === 2);
    expect(await presence.members(stream)).toEqual([
      { userId: 'ann', connections: 50 },
      { userId: 'bob', connections: 1 },
    ]);
    expect(calls.filter((c) => c === 'rtPresenceApplyV1')).toHaveLength(1);
    await waitFor(() => changes().length > 0);
    // cid joined and left within the batch: no flap reaches the subscribers.
    expect(changes()).toEqual([{ stream, joined: ['ann', 'bob'] }]);

    for (let i = 0; i < 49; i++) presence.leave(stream, 'ann');
    presence.leave(stream, 'bob');
    await waitFor(() => changes().length === 2);
    expect(changes()[1]).toEqual({ stream, left: ['bob'] });
    expect(await presence.members(stream)).toEqual([{ userId: 'ann', connections: 1 }]);
  });

  it("answers presence with this pod's latest changes, even before their batch is due", async () => {
    const { stream, presence } = await setup();
    presence.join(stream, 'dee');
    expect(await presence.members(stream)).toEqual([{ userId: 'dee', connections: 1 }]);
  });

  it('counts pods apart: one pod leaving is not the user leaving', async () => {
    const a = await setup('pod-a');
    const b = new PresenceService({ commands: redis } as unknown as RedisConnections, { serverId: 'pod-b', presenceBeatMs: 60_000 } as GatewayConfig);
    a.presence.join(a.stream, 'eve');
    b.join(a.stream, 'eve');
    await waitFor(async () => (await a.presence.members(a.stream))[0]?.connections === 2);
    b.leave(a.stream, 'eve');
    await waitFor(async () => (await a.presence.members(a.stream))[0]?.connections === 1);
    expect(a.changes().filter((c) => c.left)).toEqual([]);
  });

  it('lets a change that only moves a connection count wait, and sends it with the next write', async () => {
    const a = await setup('pod-a');
    const b = new PresenceService({ commands: redis } as unknown as RedisConnections, { serverId: 'pod-b', presenceBeatMs: 60_000 } as GatewayConfig);
    a.presence.join(a.stream, 'gus');
    await waitFor(async () => (await b.members(a.stream)).length === 1, { message: 'a new watcher written at once' });

    const askedAt = Date.now();
    a.presence.join(a.stream, 'gus');
    const meanwhile = await b.members(a.stream);
    // The count may wait up to a second; read well within it, the other pod still sees the old one.
    if (Date.now() - askedAt < 800) expect(meanwhile).toEqual([{ userId: 'gus', connections: 1 }]);

    a.presence.join(a.stream, 'hal');
    await waitFor(async () => (await b.members(a.stream)).length === 2, { timeoutMs: 500, message: 'a new watcher does not wait for counts' });
    expect(await b.members(a.stream)).toEqual([
      { userId: 'gus', connections: 2 },
      { userId: 'hal', connections: 1 },
    ]);
    expect(a.calls.filter((c) => c === 'rtPresenceApplyV1')).toHaveLength(2);

    a.presence.leave(a.stream, 'gus');
    await waitFor(async () => (await b.members(a.stream))[0]?.connections === 1, { timeoutMs: 5_000, message: 'a count alone arrives too' });
    expect(a.changes().filter((c) => c.left)).toEqual([]);
  });

  it('lets a beat supersede changes not written yet, so they never count twice', async () => {
    const { stream, presence } = await setup();
    presence.join(stream, 'fay');
    presence.join(stream, 'fay');
    await presence.beat();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await presence.members(stream)).toEqual([{ userId: 'fay', connections: 2 }]);
  });
});
