import { Injectable } from '@nestjs/common';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { RedisConnections } from '../redis/redis.providers';

/** An HTTP request that writes to the backplane is answered within this, whatever Redis does. */
export const BACKPLANE_DEADLINE_MS = 1_500;
const RETRY_AFTER_MS = 1_000;

/**
 * Bounds the backplane work of an HTTP request: `503 UNAVAILABLE` at once while the pod's
 * Redis connections are down (nothing is sent, so nothing happens later), and after
 * {@link BACKPLANE_DEADLINE_MS} when Redis stops answering mid-request — without this a
 * request waits in ioredis' offline queue through several reconnect attempts. In the second
 * case the write may still land once Redis is back; a retry with the same `Idempotency-Key`
 * then returns its first answer.
 */
@Injectable()
export class BackplaneDeadline {
  constructor(private readonly redis: RedisConnections) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (!this.redis.ready) throw unavailable('the backplane is unavailable; retry shortly');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(unavailable('the backplane did not answer in time; retry shortly')), BACKPLANE_DEADLINE_MS);
    });
    const done = work();
    // Settled after the deadline, the work has nobody left to tell.
    done.catch(() => undefined);
    try {
      return await Promise.race([done, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function unavailable(message: string): ProtocolError {
  return new ProtocolError(ErrorCode.UNAVAILABLE, message, undefined, RETRY_AFTER_MS);
}
