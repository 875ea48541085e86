import { randomBytes } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Response } from 'express';
import { OffsetGoneError, ProtocolError, type ReadFrom, type StreamName } from '@app/protocol';
import type { AuthContext } from '../auth/auth-context';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { Lifecycle } from '../lifecycle/lifecycle.service';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { ConnectionCore } from '../realtime/connection-core';
import { SubscriptionService } from '../streams/subscription.service';
import type { ReadPage } from './read-page';
import { type SseEndReason, type SseHost, SseReader } from './sse-reader';
import { READ_SECURITY_HEADERS } from './read-headers';
import { StreamReads } from './stream-reads.service';

const SSE_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-store',
  // Proxies that buffer responses (nginx) would hold every event back.
  'X-Accel-Buffering': 'no',
  ...READ_SECURITY_HEADERS,
};

/**
 * `live=sse` reads (PROTOCOL.md §12, Durable Streams §5.7). The first page of history decides
 * the answer (a malformed or gone offset is an HTTP error like any read); then the reader
 * pages through history at the client's pace and, once caught up, is subscribed like a
 * socket from its position: the SubscriptionService replays what came meanwhile and joins
 * it to the stream's plain room, with no gap and no duplicate. Readers open in the core as
 * connections (token expiry, `rtgw_sockets`), take part in presence while live, and count in
 * the drain: a draining pod ends their responses and they resume elsewhere from their offset.
 */
@Injectable()
export class SseStreams implements SseHost, OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('SseReads');
  private readonly readers = new Set<SseReader>();
  private heartbeat: NodeJS.Timeout | undefined;
  readonly maxBufferedBytes: number;

  constructor(
    private readonly reads: StreamReads,
    private readonly subscriptions: SubscriptionService,
    private readonly core: ConnectionCore,
    private readonly lifecycle: Lifecycle,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {
    this.maxBufferedBytes = config.wsMaxBufferedBytes;
  }

  onApplicationBootstrap(): void {
    this.lifecycle.attach<SseReader>({ count: () => this.readers.size, list: () => [...this.readers], drain: (reader) => reader.end('draining') });
    // One timer for every reader's keep-alive, as PlainWsServer's heartbeat.
    this.heartbeat = setInterval(() => this.readers.forEach((reader) => reader.keepAlive()), this.config.heartbeatMs);
    this.heartbeat.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.heartbeat);
    for (const reader of this.readers) reader.end('shutdown');
  }

  /** Answers a `live=sse` read; resolves once the response has started (or throws the read's error). */
  async open(stream: StreamName, auth: AuthContext, from: ReadFrom, echoedCursor: unknown, response: Response): Promise<void> {
    const first = await this.reads.page(stream, from);
    // The client left while the page was read: its 'close' has been and gone.
    if (response.destroyed) return;
    response.writeHead(200, SSE_HEADERS);
    const reader = new SseReader(randomBytes(12).toString('base64url'), { auth }, response, this, first.next, echoedCursor);
    this.readers.add(reader);
    this.metrics.httpReaders.inc({ mode: 'sse' });
    response.on('close', () => this.forget(reader));
    this.core.opened(reader);
    void this.follow(reader, stream, first);
  }

  // SseHost: what every reader calls back into.
  joinRoom(reader: SseReader, stream: string): void {
    this.core.joinPlain(reader, stream);
  }

  leaveRoom(reader: SseReader, stream: string): void {
    this.core.leavePlain(reader, stream);
  }

  ended(_reader: SseReader, reason: SseEndReason): void {
    this.metrics.httpReadersClosed.inc({ reason });
  }

  /** Catch-up page by page, then live; loops back to history when the subscription cannot replay. */
  private async follow(reader: SseReader, stream: StreamName, first: ReadPage): Promise<void> {
    let page = first;
    try {
      for (;;) {
        await reader.sendPage(page);
        if (reader.disconnected) return;
        if (page.upToDate && (await this.goLive(reader, stream))) return;
        if (reader.disconnected) return;
        page = await this.reads.page(stream, { kind: 'after', position: reader.position });
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) this.logger.warn({ msg: 'SSE read failed', stream, err: error instanceof Error ? error.stack : String(error) });
      reader.end(error instanceof OffsetGoneError ? 'gone' : 'error');
    }
  }

  /**
   * Subscribes the reader from its position. False when the answer is a snapshot instead of a
   * replay: the stream moved further on while it paged than a replay covers, or the history
   * behind its offset is gone — the next page of history tells which (and ends it with 410).
   */
  private async goLive(reader: SseReader, stream: StreamName): Promise<boolean> {
    const { epoch, seq: sinceSeq } = reader.position;
    // Checked in the tick the subscription registers: a close after it ends the subscription too.
    if (reader.disconnected) return true;
    const outcome = await this.subscriptions.subscribe(reader, { stream, sinceSeq, epoch });
    if (outcome.result.snapshot !== undefined) {
      this.subscriptions.unsubscribe(reader, stream);
      return false;
    }
    outcome.afterAck?.();
    return true;
  }

  private forget(reader: SseReader): void {
    if (!this.readers.delete(reader)) return;
    if (!reader.disconnected) reader.end('client');
    this.metrics.httpReaders.dec({ mode: 'sse' });
    this.core.closed(reader);
  }
}
