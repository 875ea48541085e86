import type { Ack, CommandRequest } from '@app/protocol';
import { PendingCommands } from './pending-commands';

/** A connection that records what was sent on it and lets the test answer. */
function connection() {
  const sent: Array<{ request: CommandRequest; answer: (ack: Ack) => void }> = [];
  return { sent, send: (request: CommandRequest, answer: (ack: Ack) => void) => void sent.push({ request, answer }) };
}

describe('PendingCommands', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('holds a command until a connection exists, then sends it', async () => {
    const commands = new PendingCommands();
    const result = commands.send('presence', { stream: 'bot:b1' }, 'c1', 10_000);
    const first = connection();
    commands.connected(1, first.send);
    expect(first.sent.map((s) => s.request)).toEqual([{ v: 1, id: 'c1', type: 'presence', payload: { stream: 'bot:b1' } }]);
    first.sent[0].answer({ ok: true, result: { members: [] } });
    await expect(result).resolves.toEqual({ members: [] });
    expect(commands.size).toBe(0);
  });

  it('hands the result to onResult inside the ack callback, before the promise settles', async () => {
    const commands = new PendingCommands();
    const c = connection();
    commands.connected(1, c.send);
    const order: string[] = [];
    const result = commands.send('subscribe', { stream: 'bot:b1' }, 'c0', 10_000, false, () => order.push('onResult'));
    void result.then(() => order.push('then'));
    c.sent[0].answer({ ok: true, result: { stream: 'bot:b1', epoch: 'e', seq: 3, replayed: 0 } });
    // What the same read delivers next (a replayed event) runs after onResult, before `then`.
    order.push('next frame');
    await result;
    expect(order).toEqual(['onResult', 'next frame', 'then']);
  });

  it('resends an unanswered command with the same id on the next connection', async () => {
    const commands = new PendingCommands();
    const a = connection();
    commands.connected(1, a.send);
    const result = commands.send('chat', { botId: 'b1', content: 'hi' }, 'c2', 10_000);
    commands.disconnected();
    const b = connection();
    commands.connected(2, b.send);
    expect(b.sent.map((s) => s.request.id)).toEqual(['c2']);
    // A late answer on the dead connection cannot arrive; the new one settles it.
    b.sent[0].answer({ ok: true, result: { runId: 'r', sessionId: 's', jobId: 'r' } });
    await expect(result).resolves.toMatchObject({ runId: 'r' });
  });

  it('retries RATE_LIMITED after retryAfterMs, and rejects other errors as ProtocolErrors', async () => {
    const commands = new PendingCommands();
    const c = connection();
    commands.connected(1, c.send);
    const limited = commands.send('presence', { stream: 'bot:b1' }, 'c3', 10_000);
    c.sent[0].answer({ ok: false, error: { code: 'RATE_LIMITED', message: 'slow down', retryAfterMs: 200 } });
    expect(c.sent).toHaveLength(1);
    jest.advanceTimersByTime(200);
    expect(c.sent.map((s) => s.request.id)).toEqual(['c3', 'c3']);
    c.sent[1].answer({ ok: true, result: { members: [] } });
    await expect(limited).resolves.toEqual({ members: [] });

    const forbidden = commands.send('subscribe', { stream: 'bot:x' }, 'c4', 10_000);
    c.sent[2].answer({ ok: false, error: { code: 'FORBIDDEN', message: 'no' } });
    await expect(forbidden).rejects.toMatchObject({ name: 'ProtocolError', code: 'FORBIDDEN' });
  });

  it('fails with TIMEOUT at the deadline, and at once for connection-bound commands that lose their connection', async () => {
    const commands = new PendingCommands();
    const late = commands.send('presence', { stream: 'bot:b1' }, 'c5', 1_000);
    jest.advanceTimersByTime(1_000);
    await expect(late).rejects.toMatchObject({ code: 'TIMEOUT' });

    const c = connection();
    commands.connected(1, c.send);
    const bound = commands.send('subscribe', { stream: 'bot:b1' }, 'c6', 10_000, false);
    commands.disconnected();
    await expect(bound).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(commands.send('subscribe', { stream: 'bot:b1' }, 'c7', 10_000, false)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
