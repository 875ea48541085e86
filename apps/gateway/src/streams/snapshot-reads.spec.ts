import type { CatchUp } from '@app/backplane';
import { initialState, type StreamName } from '@app/protocol';
import { type FeedPosition, SnapshotReads } from './snapshot-reads';

function snapshotAt(epoch: string, seq: number): CatchUp {
  return { mode: 'snapshot', reason: 'requested', epoch, seq, state: initialState('bot'), tailLength: 0 };
}

/** Reads answered by hand, in the order they were sent. */
function manualReads() {
  const sent: Array<{ stream: StreamName; answer: (catchUp: CatchUp) => void; fail: (error: Error) => void }> = [];
  const read = (stream: StreamName) => new Promise<CatchUp>((answer, fail) => sent.push({ stream, answer, fail }));
  return { sent, read };
}

/** A feed whose position the test moves. */
const feedAt = (stream: StreamName, epoch: string | null, seq: number) => ({ stream, position: { epoch, seq } }) satisfies FeedPosition;

describe('SnapshotReads', () => {
  it('sends one read at a time per stream: who asks meanwhile shares the next one, which starts after they asked', async () => {
    const { sent, read } = manualReads();
    const reads = new SnapshotReads(read);
    const feed = feedAt('bot:s', 'e', 0);
    const first = reads.snapshot(feed);
    const second = reads.snapshot(feed);
    const third = reads.snapshot(feed);
    expect(sent).toHaveLength(1);

    sent[0].answer(snapshotAt('e', 4));
    expect(await first).toMatchObject({ seq: 4 });
    // The read in flight when they asked may have been sent before their feeds collected: not theirs.
    expect(sent).toHaveLength(2);
    sent[1].answer(snapshotAt('e', 6));
    expect(await second).toMatchObject({ seq: 6 });
    expect(await third).toBe(await second);
  });

  it('answers from the last snapshot, with no read, while the feed stands exactly at its position', async () => {
    const { sent, read } = manualReads();
    const reads = new SnapshotReads(read);
    const feed = feedAt('bot:q', 'e', 3);
    const first = reads.snapshot(feed);
    sent[0].answer(snapshotAt('e', 3));
    const snapshot = await first;
    expect(await reads.snapshot(feed)).toBe(snapshot);
    expect(sent).toHaveLength(1);

    // Once the feed has delivered past it (or moved to another epoch), a new read.
    feed.position = { epoch: 'e', seq: 4 };
    void reads.snapshot(feed);
    expect(sent).toHaveLength(2);
    sent[1].answer(snapshotAt('e2', 4));
    await new Promise((resolve) => setImmediate(resolve));
    void reads.snapshot(feed);
    expect(sent).toHaveLength(3);
  });

  it('keeps streams apart and lets a failed read fail only those who shared it', async () => {
    const { sent, read } = manualReads();
    const reads = new SnapshotReads(read);
    const a = reads.snapshot(feedAt('bot:a', null, 0));
    const b = reads.snapshot(feedAt('bot:b', null, 0));
    expect(sent.map((s) => s.stream)).toEqual(['bot:a', 'bot:b']);
    sent[0].fail(new Error('redis down'));
    await expect(a).rejects.toThrow('redis down');
    const again = reads.snapshot(feedAt('bot:a', null, 0));
    expect(sent).toHaveLength(3);
    sent[2].answer(snapshotAt('e', 0));
    sent[1].answer(snapshotAt('f', 0));
    expect(await again).toMatchObject({ epoch: 'e' });
    expect(await b).toMatchObject({ epoch: 'f' });
  });
});
