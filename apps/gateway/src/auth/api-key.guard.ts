import { timingSafeEqual } from 'node:crypto';
import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';

/** Server-to-server API keys (`Authorization: Bearer <key>`), compared in constant time. */
@Injectable()
export class ApiKeys {
  private readonly keys: Buffer[];

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    this.keys = config.apiKeys.map((key) => Buffer.from(key));
  }

  /** The refusal for this Authorization header, or null when it carries a known key. */
  refusal(header: string | undefined): ProtocolError | null {
    const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    const presented = match ? Buffer.from(match[1]) : null;
    const known = presented && this.keys.some((key) => key.length === presented.length && timingSafeEqual(key, presented));
    if (known) return null;
    return new ProtocolError(ErrorCode.UNAUTHORIZED, match ? 'unknown API key' : 'missing API key (Authorization: Bearer <key>)');
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
