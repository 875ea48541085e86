import { timingSafeEqual } from 'node:crypto';
import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { bearerCredential } from './bearer';

/**
 * The server-to-server write routes (PROTOCOL.md §7) an API key opens, as Express paths: the
 * key is checked there before any body is read. The reads under `/v1` (§12) take user JWTs.
 * (PublishController's guard checks the key again, so a route missing here is still closed.)
 */
export const API_KEY_ROUTES = ['/v1/streams/:stream/events', '/v1/bots/:botId/inbound'];

/** Server-to-server API keys (`Authorization: Bearer <key>`), compared in constant time. */
@Injectable()
export class ApiKeys {
  private readonly keys: Buffer[];

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    this.keys = config.apiKeys.map((key) => Buffer.from(key));
  }

  /** The refusal for this Authorization header, or null when it carries a known key. */
  refusal(header: string | undefined): ProtocolError | null {
    const credential = bearerCredential(header);
    const presented = credential !== undefined ? Buffer.from(credential) : null;
    const known = presented && this.keys.some((key) => key.length === presented.length && timingSafeEqual(key, presented));
    if (known) return null;
    return new ProtocolError(ErrorCode.UNAUTHORIZED, presented ? 'unknown API key' : 'missing API key (Authorization: Bearer <key>)');
  }

  /**
   * Express middleware for the API's path: the key is checked before the body is parsed,
   * so a request without one gets 401 whatever its body (PROTOCOL.md §7).
   */
  middleware(): (request: Request, response: Response, next: NextFunction) => void {
    return (request, response, next) => {
      const refusal = this.refusal(request.headers.authorization);
      if (!refusal) return next();
      response.status(401).json(refusal.toBody());
    };
  }
}

/** The same check on the controller, so the requirement reads next to the routes. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(private readonly apiKeys: ApiKeys) {}

  canActivate(context: ExecutionContext): boolean {
    const refusal = this.apiKeys.refusal(context.switchToHttp().getRequest<Request>().headers.authorization);
    if (refusal) throw refusal;
    return true;
  }
}
