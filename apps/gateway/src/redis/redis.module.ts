import { Global, Module } from '@nestjs/common';
import { RedisConnections } from './redis.providers';

@Global()
@Module({ providers: [RedisConnections], exports: [RedisConnections] })
export class RedisModule {}
