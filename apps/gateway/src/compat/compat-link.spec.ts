import { Logger } from '@nestjs/common';
import { type Ack, ErrorCode, ProtocolError } from '@app/protocol';
import type { PlainConnection } from '../plain-ws/plain-connection';
import type { ConnectionCore } from '../realtime/connection-core';
import { connectionNotice } from './client-frames';
import { BoundedMap, CompatLink, MAX_WAITING_FRAMES } from './compat-link';

/** The core as far as a link uses it: each command frame is recorded and acked when the test says. */
function fakeCore() {
  const sent: Array<{ frame: { id: string; type: string; payload: unknown }; ack: (ack: Ack) => void }> = [];
  const core = { command: (_connection: unknown, frame: never, ack: (ack: Ack) => void) => sent.push({ frame, ack }) } as unknown as ConnectionCore;
  return { core, sent };
}

const connection = { id: 'conn1', disconnected: false } as PlainConnection;

describe('CompatLink', () => {
  it("follows events of its subscribe's epoch; one of another epoch closes the socket 1013 so the dashboard resyncs", () => {
    const ended: string[] = [];
    const conn = { id: 'conn3', disconnected: false, end: (reason: string) => ended.push(reason) } as unknown as PlainConnection;
    const { core, sent } = fakeCore();
    const link = new CompatLink(conn, core, 'cb');
    const event = (epoch: string) => ({ v: 1, stream: 'bot:b', seq: 1, epoch, id: 'i', type: 'thinking', ts: 1, payload: {} }) as never;
    expect(link.follows(event('e0'))).toBe(true); // nothing subscribed yet
    link.subscribe('bot:b', () => undefined);
    sent[0].ack({ ok: true, result: { stream: 'bot:b', epoch: 'e1', seq: 0, replayed: 0 } });
    expect(link.follows(event('e1'))).toBe(true);
    expect(ended).toEqual([]);
    expect(link.follows(event('e2'))).toBe(false);
    expect(ended).toEqual(['unavailable']);
  });

  it('closes the socket 1013 (try again later) after its error frame when the subscribe failed for a passing reason; not for a refusal', () => {
    const ended: string[] = [];
    const conn = { id: 'conn2', disconnected: false, end: (reason: string) => ended.push(reason) } as unknown as PlainConnection;
    const { core, sent } = fakeCore();
    const link = new CompatLink(conn, core, 'dag');
    const seen: string[] = [];
    link.subscribe('dag:e1', (ack) => seen.push(ack.ok ? 'ok' : ack.error.code));
    sent[0].ack({ ok: false, error: { code: ErrorCode.UNAVAILABLE, message: 'the backplane is unavailable', retryAfterMs: 1000 } });
    expect(seen).toEqual(['UNAVAILABLE']);
    expect(ended).toEqual(['unavailable']);

    link.subscribe('dag:e2', (ack) => seen.push(ack.ok ? 'ok' : ack.error.code));
    sent[1].ack({ ok: false, error: { code: ErrorCode.FORBIDDEN, message: 'no' } });
    expect(seen).toEqual(['UNAVAILABLE', 'FORBIDDEN']);
    expect(ended).toEqual(['unavailable']);
  });

  it('makes fresh command ids, and for a frame that carries its own id the same id again', () => {
    const { core, sent } = fakeCore();
    const link = new CompatLink(connection, core, 'pp');
    void link.command('new_session', { botId: 'b' });
    void link.command('new_session', { botId: 'b' });
    void link.command('plan_response', { planId: 'p1', response: 'approve' }, link.idFor('plan', 'r1.plan-1'));
    expect(sent.map((s) => s.frame.id)).toEqual(['pp.conn1.1', 'pp.conn1.2', 'pp.plan.r1.plan-1']);
    // An id the contract would refuse as a command id falls back to a fresh one.
    expect(link.idFor('approval', 'has space')).toBe('pp.conn1.3');
  });

  it("runs frames one at a time in order, answers a task's ProtocolError, and refuses frames past the bound", async () => {
    const { core, sent } = fakeCore();
    const link = new CompatLink(connection, core, 'dag');
    const errors: string[] = [];
    const done: number[] = [];
    expect(
      link.enqueue(
        async () => {
          const ack = await link.command('pause_execution', { executionId: 'e1' });
          done.push(ack.ok ? 1 : 0);
        },
        (e) => errors.push(e.code),
      ),
    ).toBe(true);
    link.enqueue(
      () => {
        throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'bad');
      },
      (e) => errors.push(e.code),
    );
    for (let i = 2; i < MAX_WAITING_FRAMES; i++)
      expect(
        link.enqueue(
          () => void done.push(i),
          () => undefined,
        ),
      ).toBe(true);
    expect(
      link.enqueue(
        () => undefined,
        () => undefined,
      ),
    ).toBe(false);

    // Nothing after the first runs until its command is answered.
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toHaveLength(1);
    expect(done).toEqual([]);
    sent[0].ack({ ok: true, result: {} });
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toEqual([1, ...Array.from({ length: MAX_WAITING_FRAMES - 2 }, (_, i) => i + 2)]);
    expect(errors).toEqual(['VALIDATION_FAILED']);
    expect(
      link.enqueue(
        () => undefined,
        () => undefined,
      ),
    ).toBe(true);
  });

  it('answers an unexpected failure INTERNAL, keeping its details out of the frame', async () => {
    const { core } = fakeCore();
    const link = new CompatLink(connection, core, 'cb');
    const errors: unknown[] = [];
    const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    link.enqueue(
      () => {
        throw new Error('secret stack');
      },
      (e) => errors.push(e),
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toEqual([{ code: 'INTERNAL', message: 'internal error' }]);
    expect(logged).toHaveBeenCalledWith(expect.objectContaining({ err: expect.stringContaining('secret stack') }));
    logged.mockRestore();
  });
});

describe('BoundedMap', () => {
  it('forgets the oldest entry past its limit; setting a key again makes it the newest', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1).set('b', 2).set('a', 3).set('c', 4);
    expect([...map.entries()]).toEqual([
      ['a', 3],
      ['c', 4],
    ]);
  });
});

describe('connectionNotice', () => {
  it("turns the connection's own notices into an error body for protocols that have only an error frame", () => {
    expect(connectionNotice('auth_expired', { message: 'token expired' })).toEqual({ code: 'UNAUTHORIZED', message: 'token expired' });
    expect(connectionNotice('draining', { serverId: 'pod-1', reconnectInMs: 250 })).toEqual({
      code: 'UNAVAILABLE',
      message: 'this server is draining: reconnect',
      retryAfterMs: 250,
    });
    expect(connectionNotice('command_error', { error: { code: 'NOT_FOUND', message: 'x' } })).toEqual({ code: 'NOT_FOUND', message: 'x' });
    expect(
      connectionNotice('hello', { protocol: 1, connectionId: 'c', serverId: 's', heartbeatMs: 1, limits: { maxPayloadBytes: 1, commandsPerSecond: 1 } }),
    ).toBeUndefined();
    expect(connectionNotice('presence', { stream: 'bot:b', joined: ['u'] })).toBeUndefined();
  });
});
