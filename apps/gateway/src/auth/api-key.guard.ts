import { timingSafeEqual } from 'node:crypto';
import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';

/** Server-to-server API key check (`Authorization: Bearer <key>`), in constant time. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly keys: Buffer[];

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    this.keys = config.apiKeys.map((key) => Buffer.from(key));
  }

  canActivate(context: ExecutionContext): boolean {
    const header = context.switchToHttp().getRequest<Request>().headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    const presented = match ? Buffer.from(match[1]) : null;
    const known = presented && this.keys.some((key) => key.length === presented.length && timingSafeEqual(key, presented));
    if (!known) throw new ProtocolError(ErrorCode.UNAUTHORIZED, match ? 'unknown API key' : 'missing API key (Authorization: Bearer <key>)');
    return true;
  }
}
