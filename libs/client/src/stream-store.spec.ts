import type { Envelope, StreamName } from '@app/protocol';
import { type ResyncReason, StreamStore } from './stream-store';

const stream: StreamName = 'bot:b1';
const event = (seq: number, epoch = 'e1'): Envelope => ({
  v: 1,
  stream,
  seq,
  epoch,
  id: `id-${epoch}-${seq}`,
  type: 'session_created',
  ts: seq,
  payload: { sessionId: `s${seq}`, title: `t${seq}` },
});

function liveStore(): { store: StreamStore<'bot'>; resyncs: ResyncReason[] } {
  const resyncs: ResyncReason[] = [];
  const store = new StreamStore<'bot'>(stream, (_s, reason) => resyncs.push(reason));
  store.beginSubscribe();
  store.applySubscribeResult({
    stream,
    epoch: 'e1',
    seq: 2,
    replayed: 0,
    snapshot: { activeRuns: {}, pendingApprovals: {}, pendingPlans: {}, sessions: [], recentRuns: [], recentErrors: [] },
  });
  return { store, resyncs };
}

describe('StreamStore', () => {
  it('folds events in seq order and drops duplicates', () => {
    const { store, resyncs } = liveStore();
    for (const seq of [3, 3, 2, 4]) store.receive(event(seq));
    expect(store.seq).toBe(4);
    expect(store.lastId).toBe('id-e1-4');
    expect(store.duplicatesDropped).toBe(2);
    expect(store.state.sessions.map((s) => s.sessionId)).toEqual(['s3', 's4']);
    expect(resyncs).toEqual([]);
  });

  it('asks for a resync on a gap, keeping its position to resume from', () => {
    const { store, resyncs } = liveStore();
    store.receive(event(3));
    store.receive(event(5));
    expect(resyncs).toEqual(['gap']);
    expect(store.resumePoint()).toEqual({ sinceSeq: 3, epoch: 'e1', lastId: 'id-e1-3' });
  });

  it('asks for a snapshot when the epoch changes', () => {
    const { store, resyncs } = liveStore();
    store.receive(event(1, 'e2'));
    expect(resyncs).toEqual(['epoch']);
    expect(store.resumePoint()).toBeUndefined();
  });

  it('holds events that arrive before the subscribe answer, then keeps only those after it', () => {
    const store = new StreamStore<'bot'>(stream, () => undefined);
    store.beginSubscribe();
    store.receive(event(6));
    store.receive(event(5));
    store.receive(event(4));
    store.applySubscribeResult({
      stream,
      epoch: 'e1',
      seq: 4,
      replayed: 0,
      snapshot: { activeRuns: {}, pendingApprovals: {}, pendingPlans: {}, sessions: [], recentRuns: [], recentErrors: [] },
    });
    expect(store.seq).toBe(6);
    expect(store.state.sessions.map((s) => s.sessionId)).toEqual(['s5', 's6']);
  });

  it('takes a snapshot, not a duplicate drop, when a new epoch continues the seqs (a failover that lost events)', () => {
    const { store, resyncs } = liveStore();
    for (const seq of [3, 4, 5]) store.receive(event(seq));
    // The new master kept 1..3 and started epoch e2 after them: 4 and 5 of e1 were lost.
    store.receive(event(4, 'e2'));
    expect(resyncs).toEqual(['epoch']);
    expect(store.duplicatesDropped).toBe(0);
    expect(store.resumePoint()).toBeUndefined();

    // Events of both epochs arrive while the resubscribe is unanswered; the snapshot is at e2/4.
    store.beginSubscribe();
    store.receive(event(5));
    store.receive(event(5, 'e2'));
    store.applySubscribeResult({
      stream,
      epoch: 'e2',
      seq: 4,
      replayed: 0,
      snapshot: { activeRuns: {}, pendingApprovals: {}, pendingPlans: {}, sessions: [], recentRuns: [], recentErrors: [] },
    });
    expect(resyncs).toEqual(['epoch']);
    expect(store.status).toBe('live');
    expect({ epoch: store.epoch, seq: store.seq, lastId: store.lastId }).toEqual({ epoch: 'e2', seq: 5, lastId: 'id-e2-5' });
  });
});
