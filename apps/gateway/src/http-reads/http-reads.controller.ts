import { All, Controller, Get, Head, Headers, MethodNotAllowedException, Param, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { OFFSET_NOW, STREAM_NEXT_OFFSET_HEADER, type StreamName, type StreamSnapshotResponse } from '@app/protocol';
import { type AuthContext, requireAccess } from '../auth/auth-context';
import { bearerCredential } from '../auth/bearer';
import { ConnectionAuth } from '../auth/connection-auth.service';
import { streamParam } from '../http/stream-param';
import { LongPolls } from './long-polls.service';
import { pageEtag, sendNothingNew, sendPage, sendTail } from './read-headers';
import { parseReadQuery } from './read-query';
import { SseStreams } from './sse-streams.service';
import { streamCursor } from './stream-cursor';
import { StreamReads } from './stream-reads.service';

/**
 * HTTP reads (PROTOCOL.md §12), the Durable Streams read side in JSON mode, with a user JWT
 * as `Authorization: Bearer` (401 without a valid one, 403 outside its scope). Each route
 * checks who asks and what, and hands the read to its service.
 */
@Controller('v1/streams')
export class HttpReadsController {
  constructor(
    private readonly connectionAuth: ConnectionAuth,
    private readonly reads: StreamReads,
    private readonly longPolls: LongPolls,
    private readonly sse: SseStreams,
  ) {}

  /** The stream's state folded up to `seq`, and the offset to read on from. */
  @Get(':stream/snapshot')
  async snapshot(
    @Param('stream') name: string,
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) response: Response,
  ): Promise<StreamSnapshotResponse> {
    const { stream } = await this.admit(authorization, name);
    const snapshot = await this.reads.snapshot(stream);
    response.setHeader(STREAM_NEXT_OFFSET_HEADER, snapshot.offset);
    response.setHeader('Cache-Control', 'no-store');
    return snapshot;
  }

  /** Where the stream stands (`Stream-Next-Offset` of its tail), without a body. */
  @Head(':stream')
  async tail(@Param('stream') name: string, @Headers('authorization') authorization: string | undefined, @Res() response: Response): Promise<void> {
    const { stream } = await this.admit(authorization, name);
    sendTail(response, await this.reads.tail(stream));
  }

  /** The events after `offset`: at once, or waiting for them (`live=long-poll`), or as SSE (`live=sse`). */
  @Get(':stream')
  async read(
    @Param('stream') name: string,
    @Query() query: Record<string, unknown>,
    @Headers('authorization') authorization: string | undefined,
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Res() response: Response,
  ): Promise<void> {
    const { stream, auth } = await this.admit(authorization, name);
    const { from, offset, live, cursor } = parseReadQuery(query);
    if (live === 'sse') return this.sse.open(stream, auth, from, cursor, response);

    const etag = (page: Parameters<typeof pageEtag>[2]) => (offset === OFFSET_NOW ? undefined : pageEtag(stream, offset, page));
    if (live === 'long-poll') {
      const gone = new AbortController();
      response.on('close', () => gone.abort());
      // The client left while it was admitted: its 'close' has been and gone.
      if (response.destroyed) gone.abort();
      const answer = await this.longPolls.wait(stream, auth, from, gone.signal);
      if (gone.signal.aborted) return;
      if ('timedOut' in answer) return sendNothingNew(response, answer.timedOut, streamCursor(cursor));
      return sendPage(response, answer.page, streamCursor(cursor), etag(answer.page), ifNoneMatch);
    }
    const page = await this.reads.page(stream, from);
    sendPage(response, page, streamCursor(cursor), etag(page), ifNoneMatch);
  }

  /** Reads only: publishing is `POST /v1/streams/:stream/events` (§7), with an API key. */
  @All([':stream', ':stream/snapshot'])
  readOnly(@Res() response: Response): never {
    response.setHeader('Allow', 'GET, HEAD');
    throw new MethodNotAllowedException('this URL is read-only (GET, HEAD); publish with POST /v1/streams/:stream/events and an API key');
  }

  /** The user's token (401), a valid stream name (400), inside the token's scope (403). */
  private async admit(authorization: string | undefined, name: string): Promise<{ stream: StreamName; auth: AuthContext }> {
    const auth = await this.connectionAuth.authenticate(bearerCredential(authorization));
    const stream = streamParam(name).name;
    requireAccess(auth, stream);
    return { stream, auth };
  }
}
