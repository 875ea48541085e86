import type { BotEvent, Envelope } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { connectSocket, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * Decisions nobody answers (PROTOCOL.md §9): the parked run is woken by its job's delay at the
 * expiry, applies the default (reject), announces it resolved by `system`, and ends with one
 * done; a late answer is CONFLICT. Short timeouts, so a system of its own.
 */
let system: TestSystem;
let socket: TestSocket;
beforeAll(async () => {
  system = await startSystem({ gateways: 1, workers: 1, workerEnv: { APPROVAL_TIMEOUT_MS: '1500', PLAN_TIMEOUT_MS: '1500' } });
  socket = await connectSocket(system.gateways[0].url, await signToken({ sub: 'ann' }));
  await socket.command('subscribe', { stream: 'bot:agent-expiry' });
});
afterAll(async () => {
  socket?.close();
  await system?.stop();
});

type Payload<T extends BotEvent['type']> = Extract<BotEvent, { type: T }>['payload'];
const ofRun = (runId: string): Envelope[] => socket.events.filter((e) => (e.payload as { runId?: string }).runId === runId);
const first = <T extends BotEvent['type']>(events: Envelope[], type: T) => events.find((e) => e.type === type)?.payload as Payload<T> | undefined;

async function run(content: string): Promise<string> {
  const ack = await socket.command<{ runId: string }>('chat', { botId: 'agent-expiry', content });
  if (!ack.ok) throw new Error(JSON.stringify(ack));
  return ack.result.runId;
}

it('an approval nobody answers expires: rejected by system, tool_end failed, the run completes; a late answer is CONFLICT', async () => {
  const runId = await run('/tool delete_file {"path":"/srv/expiring"}');
  const needed = await waitFor(() => first(ofRun(runId), 'approval_needed'), { message: 'approval_needed' });
  const done = await waitFor(() => first(ofRun(runId), 'done'), { message: 'done after the expiry', timeoutMs: 15_000 });
  expect(done.status).toBe('completed');
  expect(Date.now()).toBeGreaterThanOrEqual(needed.expiresAt);
  expect(socket.events.filter((e) => e.type === 'approval_resolved').map((e) => e.payload)).toEqual([
    expect.objectContaining({ approvalId: needed.approvalId, approved: false, resolvedBy: 'system' }),
  ]);
  expect(first(ofRun(runId), 'tool_end')).toMatchObject({ success: false, result: { error: 'the approval expired' } });
  expect(ofRun(runId).filter((e) => e.type === 'done')).toHaveLength(1);
  expect(await socket.command('approval', { approvalId: needed.approvalId, approved: true })).toMatchObject({ ok: false, error: { code: 'CONFLICT' } });
});

it('a plan nobody answers expires as rejected: a reply saying so, completed', async () => {
  const runId = await run('/plan wait forever');
  const created = await waitFor(() => first(ofRun(runId), 'plan_created'), { message: 'plan_created' });
  const done = await waitFor(() => first(ofRun(runId), 'done'), { message: 'done after the expiry', timeoutMs: 15_000 });
  expect(done.status).toBe('completed');
  expect(socket.events.filter((e) => e.type === 'plan_resolved').map((e) => e.payload)).toEqual([
    expect.objectContaining({ planId: created.planId, response: 'reject', resolvedBy: 'system' }),
  ]);
  const reply = ofRun(runId).filter((e) => e.type === 'message' && (e.payload as Payload<'message'>).role === 'assistant');
  expect(reply.map((e) => (e.payload as Payload<'message'>).content).join('')).toBe('The plan was not answered in time, so nothing was done.');
});
