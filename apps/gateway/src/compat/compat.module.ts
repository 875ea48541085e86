import { Module } from '@nestjs/common';
import { PlainWsModule } from '../plain-ws/plain-ws.module';
import { RealtimeModule } from '../realtime/realtime.module';
import { CachiBotEndpoint } from './cachibot.endpoint';
import { DagStreamEndpoint } from './dag-stream.endpoint';
import { PocketPawEndpoint } from './pocketpaw.endpoint';

/**
 * Compatibility endpoints for existing dashboards (PROTOCOL.md §13): each a plain-WebSocket
 * endpoint registered with the pod's PlainWsServer, mapping an older protocol's frames onto
 * the contract through the connection core. docs/compat.md has the mappings.
 */
@Module({ imports: [PlainWsModule, RealtimeModule], providers: [PocketPawEndpoint, CachiBotEndpoint, DagStreamEndpoint] })
export class CompatModule {}
