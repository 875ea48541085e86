import type { Envelope } from '@app/protocol';
import { continuing, PAGE_MAX_CHARS, pageOf, relation } from './read-page';

const event = (seq: number, epoch = 'e1', bytes = 0): Envelope => ({
  v: 1,
  stream: 'bot:b1',
  seq,
  epoch,
  id: `id-${epoch}-${seq}`,
  type: 'thinking',
  ts: 1,
  payload: { text: 'x'.repeat(bytes) },
});

describe('pageOf', () => {
  it('carries the events as a JSON array and reads on after the last one', () => {
    const events = [event(4), event(5)];
    const page = pageOf({ epoch: 'e1', seq: 3 }, events, 9);
    expect(JSON.parse(page.json)).toEqual(events);
    expect(page).toMatchObject({ count: 2, next: { epoch: 'e1', seq: 5 }, upToDate: false });
    expect(pageOf({ epoch: 'e1', seq: 3 }, events, 5).upToDate).toBe(true);
  });

  it('is an empty array at the start position when there is nothing', () => {
    expect(pageOf({ epoch: 'e1', seq: 7 }, [], 7)).toEqual({ json: '[]', count: 0, next: { epoch: 'e1', seq: 7 }, upToDate: true });
  });

  it('stops before the event that would take it past the size bound, but always holds one', () => {
    const big = Math.floor(PAGE_MAX_CHARS / 3);
    const page = pageOf({ epoch: 'e1', seq: 0 }, [event(1, 'e1', big), event(2, 'e1', big), event(3, 'e1', big), event(4, 'e1', big)], 4);
    expect(page).toMatchObject({ count: 2, next: { seq: 2 }, upToDate: false });
    expect(page.json.length).toBeLessThanOrEqual(PAGE_MAX_CHARS);
    expect(pageOf({ epoch: 'e1', seq: 0 }, [event(1, 'e1', PAGE_MAX_CHARS)], 1)).toMatchObject({ count: 1, upToDate: true });
  });
});

describe('relation and continuing', () => {
  const at = { epoch: 'e1', seq: 5 };

  it('tells old, next and breaking events apart', () => {
    expect(relation(at, event(5))).toBe('old');
    expect(relation(at, event(6))).toBe('next');
    expect(relation(at, event(7))).toBe('break');
    expect(relation(at, event(6, 'e2'))).toBe('break');
  });

  it('keeps what continues the position, up to the first gap or epoch change', () => {
    expect(continuing(at, [event(4), event(5), event(6), event(7)]).map((e) => e.seq)).toEqual([6, 7]);
    expect(continuing(at, [event(6), event(8), event(9)]).map((e) => e.seq)).toEqual([6]);
    expect(continuing(at, [event(6), event(7, 'e2')]).map((e) => e.seq)).toEqual([6]);
    expect(continuing(at, [event(7)])).toEqual([]);
  });
});
