import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { RealtimeModule } from '../realtime/realtime.module';
import { PlainWsServer } from './plain-ws.server';
import { WsEndpoint } from './ws.endpoint';

/** Plain-WebSocket transports over the connection core: `/ws`, and the router compat endpoints register with. */
@Module({ imports: [AuthModule, RealtimeModule], providers: [PlainWsServer, WsEndpoint], exports: [PlainWsServer] })
export class PlainWsModule {}
