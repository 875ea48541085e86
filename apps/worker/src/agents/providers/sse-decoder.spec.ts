import fc from 'fast-check';
import { SseDecoder } from './sse-decoder';

function decode(pieces: Uint8Array[]): string[] {
  const decoder = new SseDecoder();
  return [...pieces.flatMap((piece) => decoder.push(piece)), ...decoder.end()];
}

describe('SseDecoder', () => {
  it('reads data, joins multi-line data, and drops comments and other fields', () => {
    const text = ': keep-alive\n\nevent: message\nid: 7\ndata: {"a":1}\n\ndata:no space\ndata:  two spaces\n\nretry: 10\n\n';
    expect(decode([Buffer.from(text)])).toEqual(['{"a":1}', 'no space\n two spaces']);
  });

  it('dispatches a last event that no blank line closed', () => {
    expect(decode([Buffer.from('data: 1\n\ndata: [DONE]\n')])).toEqual(['1', '[DONE]']);
  });

  it('waits for the LF of a CRLF cut between two pieces', () => {
    expect(decode([Buffer.from('data: a\r'), Buffer.from('\ndata: b\r\n\r\n')])).toEqual(['a\nb']);
  });

  it('decodes the same events however the bytes are cut, whatever the line ending', () => {
    const line = fc.string({ unit: 'grapheme', maxLength: 12 }).map((text) => text.replace(/[\r\n]/g, ''));
    const events = fc.array(fc.array(line, { minLength: 1, maxLength: 3 }), { maxLength: 6 });
    fc.assert(
      fc.property(events, fc.constantFrom('\n', '\r\n', '\r'), fc.array(fc.nat(), { maxLength: 24 }), (lines, eol, cuts) => {
        const bytes = Buffer.from(lines.map((event) => `: ping${eol}${event.map((data) => `data: ${data}${eol}`).join('')}${eol}`).join(''));
        const points = [...new Set([0, ...cuts.map((cut) => cut % (bytes.length + 1)), bytes.length])].sort((a, b) => a - b);
        const pieces = points.slice(1).map((end, i) => bytes.subarray(points[i], end));
        expect(decode(pieces)).toEqual(lines.map((event) => event.join('\n')));
      }),
    );
  });
});
