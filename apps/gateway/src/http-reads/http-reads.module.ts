import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { RealtimeModule } from '../realtime/realtime.module';
import { StreamsModule } from '../streams/streams.module';
import { HttpReadsController } from './http-reads.controller';
import { LongPolls } from './long-polls.service';
import { SseStreams } from './sse-streams.service';
import { StreamReads } from './stream-reads.service';

/** HTTP reads (PROTOCOL.md §12): catch-up, long-poll and SSE over the streams' history and the connection core. */
@Module({ imports: [AuthModule, StreamsModule, RealtimeModule], controllers: [HttpReadsController], providers: [StreamReads, LongPolls, SseStreams] })
export class HttpReadsModule {}
