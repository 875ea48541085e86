import { ProtocolError } from '@app/protocol';
import { parseReadQuery } from './read-query';

const OFFSET = 'e1_0000000000000004';

describe('parseReadQuery', () => {
  it('reads offset, live and cursor, and ignores the rest', () => {
    expect(parseReadQuery({})).toEqual({ from: { kind: 'start' }, offset: '-1' });
    expect(parseReadQuery({ offset: 'now', live: 'sse', tenant: 'x' })).toEqual({ from: { kind: 'now' }, offset: 'now', live: 'sse' });
    expect(parseReadQuery({ offset: OFFSET, live: 'long-poll', cursor: '12' })).toEqual({
      from: { kind: 'after', position: { epoch: 'e1', seq: 4 } },
      offset: OFFSET,
      live: 'long-poll',
      cursor: '12',
    });
  });

  it.each([
    ['a malformed offset', { offset: 'twelve' }, 'offset'],
    ['an offset given twice', { offset: ['-1', 'now'] }, 'offset'],
    ['an unknown live mode', { offset: '-1', live: 'websocket' }, 'live'],
    ['a live read without an offset', { live: 'sse' }, 'offset'],
    ['a cursor given twice', { offset: '-1', cursor: ['1', '2'] }, 'cursor'],
  ])('refuses %s with VALIDATION_FAILED naming the field', (_label, query, field) => {
    let error: unknown;
    try {
      parseReadQuery(query);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe('VALIDATION_FAILED');
    expect((error as ProtocolError).details?.map((d) => d.field)).toContain(field);
  });
});
