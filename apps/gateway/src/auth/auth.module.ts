import { Module } from '@nestjs/common';
import { StreamsModule } from '../streams/streams.module';
import { ApiKeyGuard, ApiKeys } from './api-key.guard';
import { ConnectionAuth } from './connection-auth.service';
import { TokenVerifier } from './token-verifier';

/** Dashboard tokens (handshake, expiry, refresh) and server-to-server API keys. */
@Module({
  imports: [StreamsModule],
  providers: [TokenVerifier, ApiKeys, ApiKeyGuard, ConnectionAuth],
  exports: [TokenVerifier, ApiKeys, ApiKeyGuard, ConnectionAuth],
})
export class AuthModule {}
