/**
 * The `data` of server-sent events, from a byte stream that arrives in arbitrary pieces
 * (WHATWG HTML, "event stream interpretation"): a piece may end inside a line, inside a UTF-8
 * sequence or between the CR and LF of one line ending. Only `data` matters to a chat
 * completions stream, so `event`, `id` and `retry` fields and `:` comments (keep-alives) are
 * dropped.
 */
export class SseDecoder {
  private readonly utf8 = new TextDecoder();
  private pending = '';
  /** The `data` lines of the event being read; null until one arrives. */
  private data: string[] | null = null;

  /** Feeds the next piece of the body; returns the events it completed. */
  push(bytes: Uint8Array): string[] {
    return this.lines(this.utf8.decode(bytes, { stream: true }), false);
  }

  /**
   * The body ended. The standard drops an event that no blank line closed; servers that end
   * with `data: [DONE]\n` and no blank line exist, so it is dispatched instead.
   */
  end(): string[] {
    return this.lines(this.utf8.decode(), true);
  }

  private lines(text: string, final: boolean): string[] {
    const buffer = this.pending + text;
    const events: string[] = [];
    const eol = /\r\n|\n|\r/g;
    let start = 0;
    for (let match = eol.exec(buffer); match; match = eol.exec(buffer)) {
      // A CR that ends the piece may be the first half of a CRLF: decide with the next piece.
      if (!final && match[0] === '\r' && match.index === buffer.length - 1) break;
      this.line(buffer.slice(start, match.index), events);
      start = match.index + match[0].length;
    }
    this.pending = buffer.slice(start);
    if (final) {
      if (this.pending) this.line(this.pending, events);
      this.pending = '';
      this.line('', events);
    }
    return events;
  }

  private line(line: string, events: string[]): void {
    if (line === '') {
      if (this.data) events.push(this.data.join('\n'));
      this.data = null;
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    const value = colon === -1 ? '' : line.slice(colon + 1);
    (this.data ??= []).push(value.startsWith(' ') ? value.slice(1) : value);
  }
}
