import { streamCursor } from './stream-cursor';

const EPOCH = Date.UTC(2024, 9, 9);

describe('streamCursor', () => {
  it('is the 20-second interval since 2024-10-09', () => {
    expect(streamCursor(undefined, EPOCH)).toBe('0');
    expect(streamCursor(undefined, EPOCH + 19_999)).toBe('0');
    expect(streamCursor(undefined, EPOCH + 20_000)).toBe('1');
    expect(streamCursor(undefined, EPOCH + 1000 * 20_000 + 5)).toBe('1000');
  });

  it('answers the current interval to a client whose cursor is behind', () => {
    expect(streamCursor('999', EPOCH + 1000 * 20_000)).toBe('1000');
  });

  it('moves a cursor at or past the current interval on by 1 to 3600 s, never back', () => {
    const now = EPOCH + 1000 * 20_000;
    expect(streamCursor('1000', now, () => 0)).toBe('1001');
    expect(streamCursor('1000', now, () => 0.9999)).toBe('1180');
    expect(streamCursor('5000', now, () => 0.5)).toBe(String(5000 + Math.ceil(1801 / 20)));
  });

  it('ignores an echoed cursor that is not a number', () => {
    const now = EPOCH + 1000 * 20_000;
    for (const bad of ['abc', '-5', '1e9', '', ['1000'], '1234567890123456']) expect(streamCursor(bad, now)).toBe('1000');
  });
});
