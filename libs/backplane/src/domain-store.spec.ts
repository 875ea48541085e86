import { acquireRedis, type AcquiredRedis, createRedis, type RedisClient } from '@app/runtime';
import { DomainStore } from './domain-store';

let server: AcquiredRedis;
let redis: RedisClient;
let store: DomainStore;
beforeAll(async () => {
  server = await acquireRedis({ ownServer: true, persistent: false });
  redis = createRedis({ url: server.url, role: 'test' });
  store = new DomainStore(redis);
});
afterAll(async () => {
  await redis.quit();
  await server.release();
});

describe('decisions', () => {
  const record = { botId: 'b', runId: 'r', sessionId: 's' };

  it('the first answer wins and is kept; its owner may repeat it; others get conflict', async () => {
    await store.createDecision('approval', 'a1', { ...record, expiresAt: 2_000 });
    const yes = { kind: 'approval' as const, approved: true, resolvedBy: 'alice' };
    expect(await store.decide('a1', yes, 'job-1', 1_000)).toBe('resolved');
    expect(await store.decide('a1', yes, 'job-1', 1_000)).toBe('resolved');
    expect(await store.decide('a1', { ...yes, approved: false, resolvedBy: 'bob' }, 'job-2', 1_000)).toBe('conflict');
    expect(await store.getDecision('approval', 'a1')).toEqual({ ...record, status: 'resolved', expiresAt: 2_000, answer: yes });
    // Opening it again (a resumed run) leaves the answer alone.
    await store.createDecision('approval', 'a1', { ...record, expiresAt: 2_000 });
    expect(await store.getDecision('approval', 'a1')).toMatchObject({ status: 'resolved', answer: yes });
  });

  it('refuses an answer past the expiry, but not the expiry itself; unknown ids are missing', async () => {
    await store.createDecision('plan', 'p1', { ...record, expiresAt: 2_000 });
    const answer = { kind: 'plan' as const, response: 'approve' as const, resolvedBy: 'alice' };
    expect(await store.decide('p1', answer, 'job-3', 2_000)).toBe('expired');
    expect(await store.decide('p1', { ...answer, response: 'reject', resolvedBy: 'system', expired: true }, 'expiry', 0)).toBe('resolved');
    expect(await store.decide('nope', answer, 'job-4', 1_000)).toBe('missing');
    // Approvals and plans are separate namespaces.
    expect(await store.decide('p1', { kind: 'approval', approved: true, resolvedBy: 'alice' }, 'job-5', 1_000)).toBe('missing');
  });
});

describe('session lines (chat.onBusy)', () => {
  it('enqueue joins the end; reject refuses a busy session; a retried run keeps its place', async () => {
    expect(await store.admitSessionRun('s1', 'r1', 'reject')).toEqual({ outcome: 'admitted', ahead: [] });
    expect(await store.admitSessionRun('s1', 'r2', 'enqueue')).toEqual({ outcome: 'admitted', ahead: ['r1'] });
    expect(await store.admitSessionRun('s1', 'r3', 'reject')).toEqual({ outcome: 'busy', ahead: ['r1', 'r2'] });
    expect(await store.admitSessionRun('s1', 'r2', 'reject')).toEqual({ outcome: 'admitted', ahead: ['r1'] });
    expect(await store.admitSessionRun('s1', 'r4', 'interrupt')).toEqual({ outcome: 'admitted', ahead: ['r1', 'r2'] });
    expect(await store.sessionRuns('s1')).toEqual(['r1', 'r2', 'r4']);
  });

  it('a run that ends leaves the line and names the next head', async () => {
    await store.admitSessionRun('s2', 'a', 'enqueue');
    await store.admitSessionRun('s2', 'b', 'enqueue');
    expect(await store.releaseSessionRun('s2', 'a')).toBe('b');
    expect(await store.releaseSessionRun('s2', 'a')).toBe('b');
    expect(await store.releaseSessionRun('s2', 'b')).toBeNull();
  });
});

it('bot settings: a bot of its own, else the default (*)', async () => {
  expect(await store.botSettings('x')).toBeNull();
  await store.setBotSettings('*', { onBusy: 'enqueue' });
  await store.setBotSettings('strict', { onBusy: 'reject' });
  expect(await store.botSettings('strict')).toEqual({ onBusy: 'reject' });
  expect(await store.botSettings('other')).toEqual({ onBusy: 'enqueue' });
});

it('run state is saved, loaded and deleted', async () => {
  await store.saveRunState('r9', { v: 1, turns: 2 });
  expect(await store.loadRunState('r9')).toEqual({ v: 1, turns: 2 });
  await store.deleteRunState('r9');
  expect(await store.loadRunState('r9')).toBeNull();
});
