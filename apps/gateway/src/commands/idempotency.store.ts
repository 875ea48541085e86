import { createHash, randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { commandKey, runScript } from '@app/backplane';
import { type Ack, ErrorCode, ProtocolError, RETRYABLE_CODES } from '@app/protocol';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { RedisConnections } from '../redis/redis.providers';

interface CommandRecord {
  state: 'pending' | 'done';
  fingerprint: string;
  owner: string;
  ack?: Ack;
}

/**
 * Runs a command at most once per (user, command id) across all pods. The first copy
 * claims the id in Redis (`SET NX`) and runs; a copy on any pod, even one racing the first,
 * waits for the claim to settle and answers with the first ack. A retryable failure
 * releases the claim so that a retry runs again; a claim whose pod died expires.
 */
@Injectable()
export class IdempotencyStore {
  constructor(
    private readonly redis: RedisConnections,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  async runOnce(userId: string, commandId: string, type: string, payload: unknown, run: () => Promise<Ack>): Promise<Ack> {
    const key = commandKey(userId, commandId);
    const fingerprint = createHash('sha256').update(type).update('\u0000').update(JSON.stringify(payload)).digest('base64url');
    const owner = randomUUID();
    const deadline = Date.now() + this.config.limits.commandTimeoutMs;
    const claim: CommandRecord = { state: 'pending', fingerprint, owner };
    // A claim outlives the command timeout a little, so a dead pod's claim frees the id.
    const claimMs = this.config.limits.commandTimeoutMs + 5_000;

    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      const claimed = await this.redis.commands.set(key, JSON.stringify(claim), 'PX', claimMs, 'NX');
      if (claimed === 'OK') return this.settle(key, owner, fingerprint, await this.runClaimed(key, owner, run));

      const raw = await this.redis.commands.get(key);
      if (raw) {
        const record = JSON.parse(raw) as CommandRecord;
        if (record.fingerprint !== fingerprint) {
          throw new ProtocolError(ErrorCode.CONFLICT, `command id ${commandId} was already used for a different command`);
        }
        if (record.state === 'done' && record.ack) return record.ack;
      }
      if (Date.now() + wait > deadline) {
        throw new ProtocolError(ErrorCode.TIMEOUT, `command ${commandId} is still running on another connection`, undefined, 1000);
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  private async runClaimed(key: string, owner: string, run: () => Promise<Ack>): Promise<Ack> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof ProtocolError) return { ok: false, error: error.toBody() };
      // An unexpected fault decided nothing: free the id for a retry, let the caller log it.
      await runScript(this.redis.commands, 'rtCommandSettleV1', [key], [owner, '', 0]).catch(() => undefined);
      throw error;
    }
  }

  /** Keeps the ack for retries, or releases the claim when a retry should run again. */
  private async settle(key: string, owner: string, fingerprint: string, ack: Ack): Promise<Ack> {
    const retryable = !ack.ok && RETRYABLE_CODES.has(ack.error.code);
    const done: CommandRecord = { state: 'done', fingerprint, owner, ack };
    await runScript(this.redis.commands, 'rtCommandSettleV1', [key], [owner, retryable ? '' : JSON.stringify(done), this.config.idempotencyTtlSeconds]);
    return ack;
  }
}
