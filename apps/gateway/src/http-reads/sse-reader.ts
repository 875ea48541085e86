import type { Response } from 'express';
import { encodeOffset, type Envelope, type ServerToClientEvents, type SseControl, type StreamPosition } from '@app/protocol';
import type { Connection, ConnectionData } from '../realtime/connection';
import { pageOf, type ReadPage, relation } from './read-page';
import { streamCursor } from './stream-cursor';

/** Why the server ended an SSE read (`client`: the client closed it). */
export type SseEndReason = 'client' | 'slow_reader' | 'draining' | 'expired' | 'gone' | 'break' | 'error' | 'shutdown';

/** What an SSE reader needs of its pod (kept on the service, shared by every reader). */
export interface SseHost {
  /** Unsent bytes beyond which the reader is taken for stuck and cut off (WS_MAX_BUFFERED_BYTES). */
  readonly maxBufferedBytes: number;
  joinRoom(reader: SseReader, stream: string): void;
  leaveRoom(reader: SseReader, stream: string): void;
  ended(reader: SseReader, reason: SseEndReason): void;
}

/**
 * One `live=sse` read (PROTOCOL.md §12) as a Connection of the core: the SubscriptionService
 * subscribes it like a socket (replay from its position, then live, gapless), and what it
 * is sent goes out in Durable Streams framing (§5.7) — a `data` event with a JSON array of
 * envelopes, then a `control` event with the offset to resume from. It checks that each
 * event continues its offset: one that does not (a gap the pod could not fill, another
 * epoch) ends the response, and the client's reconnect from its offset reads history, or is
 * answered 410. Live events it cannot hold back: a reader whose unsent bytes pass the bound
 * is cut off, never buffered without limit.
 */
export class SseReader implements Connection {
  disconnected = false;
  /** After the last event sent (or queued): the offset the client resumes from. */
  position: StreamPosition;
  /** Live events delivered in this turn of the event loop: they leave as one `data` event. */
  private queued: Envelope[] = [];
  private flush: NodeJS.Immediate | null = null;
  private expired = false;

  constructor(
    readonly id: string,
    readonly data: ConnectionData,
    private readonly response: Response,
    private readonly host: SseHost,
    start: StreamPosition,
    /** The `cursor` the client echoed. */
    private readonly echoedCursor: unknown,
  ) {
    this.position = start;
  }

  emit<E extends keyof ServerToClientEvents>(event: E, ...args: Parameters<ServerToClientEvents[E]>): boolean {
    if (this.disconnected) return false;
    if (event === 'auth_expired') this.expired = true;
    // `hello`, presence and the rest are not part of a read.
    if (event !== 'event') return true;
    const envelope = args[0] as Envelope;
    const stands = relation(this.position, envelope);
    if (stands === 'old') return true;
    if (stands === 'break') {
      this.end('break');
      return false;
    }
    this.position = { epoch: this.position.epoch, seq: envelope.seq };
    this.queued.push(envelope);
    this.flush ??= setImmediate(() => this.sendQueued());
    return true;
  }

  /**
   * A page of catch-up: `data` (when it has events) and `control`. Resolves once the client
   * has taken it in (the socket drained), so paging through history goes at the client's pace
   * and never piles up on the pod.
   */
  async sendPage(page: ReadPage): Promise<void> {
    this.position = page.next;
    // False once the response holds more than its high-water mark: wait until it drained.
    if (this.send(frames(page, this.cursor())) || this.disconnected) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.response.off('drain', done);
        this.response.off('close', done);
        resolve();
      };
      this.response.on('drain', done);
      this.response.on('close', done);
    });
  }

  /** An SSE comment, so that proxies see a quiet reader is alive; skipped while data waits to go. */
  keepAlive(): void {
    if (this.response.writableLength === 0) this.send(': keep-alive\n\n');
  }

  join(stream: string): void {
    this.host.joinRoom(this, stream);
  }

  leave(stream: string): void {
    this.host.leaveRoom(this, stream);
  }

  /** The core ends a connection for an expired token (or a command flood, which a reader cannot send). */
  disconnect(): void {
    this.end(this.expired ? 'expired' : 'error');
  }

  /**
   * Ends the response: what is queued goes first, and the client reconnects from the last
   * offset it got. A stuck reader (or a pod shutting down) is cut off at once.
   */
  end(reason: SseEndReason): void {
    if (this.disconnected) return;
    if (reason !== 'slow_reader' && reason !== 'shutdown' && reason !== 'client') {
      this.sendQueued();
      // Sending it found the reader stuck, and cut it off.
      if (this.disconnected) return;
    }
    this.disconnected = true;
    if (this.flush) clearImmediate(this.flush);
    this.flush = null;
    this.host.ended(this, reason);
    if (reason === 'slow_reader' || reason === 'shutdown') this.response.destroy();
    else this.response.end();
  }

  private sendQueued(): void {
    this.flush = null;
    while (this.queued.length > 0 && !this.disconnected) {
      const from = { epoch: this.position.epoch, seq: this.queued[0].seq - 1 };
      const page = pageOf(from, this.queued, this.position.seq);
      this.queued = this.queued.slice(page.count);
      this.send(frames(page, this.cursor()));
    }
    this.queued = [];
  }

  /**
   * Writes, unless the client stopped reading: then it is cut off. Returns what `write` does:
   * false when the response holds more than its high-water mark ('drain' follows).
   */
  private send(text: string): boolean {
    if (this.disconnected) return false;
    // What already waits counts, not this write: one page larger than the bound still goes.
    if (this.response.writableLength > this.host.maxBufferedBytes) {
      this.end('slow_reader');
      return false;
    }
    return this.response.write(text);
  }

  private cursor(): string {
    return streamCursor(this.echoedCursor);
  }
}

/** A page as Durable Streams SSE events: `data` with the JSON array (one line), then `control`. */
function frames(page: ReadPage, cursor: string): string {
  const control: SseControl = { streamNextOffset: encodeOffset(page.next), streamCursor: cursor, ...(page.upToDate ? { upToDate: true } : {}) };
  const data = page.count > 0 ? `event: data\ndata: ${page.json}\n\n` : '';
  return `${data}event: control\ndata: ${JSON.stringify(control)}\n\n`;
}
