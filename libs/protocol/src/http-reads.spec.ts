import fc from 'fast-check';
import { decodeOffset, encodeOffset, isOffsetGoneBody, OFFSET_NOW, OFFSET_START, OffsetGoneError, parseReadOffset } from './http-reads';

const EPOCH = '0b6c2a57-3d1e-4c2f-9a4b-5e6f7a8b9e1f';
const epochs = fc.stringMatching(/^[A-Za-z0-9_.-]{1,128}$/);
const seqs = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

describe('offsets', () => {
  it('puts the epoch and a zero-padded seq in a URL-safe token', () => {
    expect(encodeOffset({ epoch: EPOCH, seq: 42 })).toBe(`${EPOCH}_0000000000000042`);
    expect(encodeOffset({ epoch: EPOCH, seq: 0 })).toBe(`${EPOCH}_0000000000000000`);
    expect(encodeOffset({ epoch: EPOCH, seq: Number.MAX_SAFE_INTEGER })).toBe(`${EPOCH}_9007199254740991`);
  });

  it('decodes what it encodes, epochs holding underscores included', () => {
    fc.assert(
      fc.property(epochs, seqs, (epoch, seq) => {
        const offset = encodeOffset({ epoch, seq });
        expect(decodeOffset(offset)).toEqual({ epoch, seq });
        expect(encodeURIComponent(offset)).toBe(offset);
      }),
    );
  });

  it('sorts the offsets of one epoch as their seqs', () => {
    fc.assert(
      fc.property(epochs, seqs, seqs, (epoch, a, b) => {
        const [x, y] = [encodeOffset({ epoch, seq: a }), encodeOffset({ epoch, seq: b })];
        expect(Math.sign(x < y ? -1 : x > y ? 1 : 0)).toBe(Math.sign(a - b));
      }),
    );
  });

  it('never produces a sentinel, nor a character the Durable Streams protocol forbids', () => {
    fc.assert(
      fc.property(epochs, seqs, (epoch, seq) => {
        const offset = encodeOffset({ epoch, seq });
        expect([OFFSET_START, OFFSET_NOW]).not.toContain(offset);
        expect(offset).not.toMatch(/[,&=?/]/);
      }),
    );
  });

  it('refuses what it cannot put in an offset', () => {
    expect(() => encodeOffset({ epoch: 'a/b', seq: 1 })).toThrow('cannot be put in an offset');
    expect(() => encodeOffset({ epoch: '', seq: 1 })).toThrow('cannot be put in an offset');
    expect(() => encodeOffset({ epoch: EPOCH, seq: -1 })).toThrow('cannot be put in an offset');
    expect(() => encodeOffset({ epoch: EPOCH, seq: 1.5 })).toThrow('cannot be put in an offset');
    expect(() => encodeOffset({ epoch: EPOCH, seq: Number.MAX_SAFE_INTEGER + 1 })).toThrow('cannot be put in an offset');
  });

  it.each([
    ['a sentinel', '-1'],
    ['no seq', EPOCH],
    ['a short seq', `${EPOCH}_42`],
    ['a long seq', `${EPOCH}_00000000000000042`],
    ['a seq past the safe integers', `${EPOCH}_9999999999999999`],
    ['no epoch', '_0000000000000042'],
    ['a slash in the epoch', `a/b_0000000000000042`],
    ['a number', 42],
    ['an array', [`${EPOCH}_0000000000000042`]],
  ])('decodes %s to null', (_label, offset) => {
    expect(decodeOffset(offset)).toBeNull();
  });
});

describe('parseReadOffset', () => {
  it('reads the sentinels, an offset, and nothing else', () => {
    expect(parseReadOffset(undefined)).toEqual({ kind: 'start' });
    expect(parseReadOffset('-1')).toEqual({ kind: 'start' });
    expect(parseReadOffset('now')).toEqual({ kind: 'now' });
    expect(parseReadOffset(`${EPOCH}_0000000000000007`)).toEqual({ kind: 'after', position: { epoch: EPOCH, seq: 7 } });
    expect(parseReadOffset('0')).toBeNull();
    expect(parseReadOffset('')).toBeNull();
    expect(parseReadOffset(['-1', 'now'])).toBeNull();
  });
});

describe('OffsetGoneError', () => {
  it('carries the current position in its body', () => {
    const body = new OffsetGoneError(`${EPOCH}_0000000000000003`, { epoch: 'e2', seq: 9 }).toBody();
    expect(body).toEqual({ code: 'NOT_FOUND', message: expect.stringContaining('take a snapshot'), epoch: 'e2', seq: 9 });
    expect(isOffsetGoneBody(body)).toBe(true);
    expect(isOffsetGoneBody({ code: 'NOT_FOUND', message: 'no such route' })).toBe(false);
  });
});
