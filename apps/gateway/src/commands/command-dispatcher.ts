import { Inject, Injectable, Logger } from '@nestjs/common';
import { type Ack, COMMAND_ID_PATTERN, type CommandType, type ErrorBody, ErrorCode, isCommandType, PROTOCOL_VERSION, ProtocolError } from '@app/protocol';
import { validateCommandPayload } from '@app/protocol/dto';
import { errorBody, knownError } from '../common/error-body';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import type { Connection } from '../realtime/connection';
import { RedisConnections } from '../redis/redis.providers';
import { CommandHandlers, IDEMPOTENT_COMMANDS, LOCAL_COMMANDS } from './command-handlers';
import type { CommandOutcome } from './command-outcome';
import { IdempotencyStore } from './idempotency.store';
import { RateLimiter } from './rate-limiter';

export type AckCallback = (ack: Ack) => void;

const FRAME_FIELDS = new Set(['v', 'id', 'type', 'payload']);

/**
 * The `command` pipeline (PROTOCOL.md §3): rate limit, frame and payload validation,
 * size limit, idempotency, the handler, and exactly one ack whatever happens — an error
 * ack for anything wrong, never a thrown exception and never a closed connection (but
 * for a flood).
 */
@Injectable()
export class CommandDispatcher {
  private readonly logger = new Logger('Commands');

  constructor(
    private readonly handlers: CommandHandlers,
    private readonly idempotency: IdempotencyStore,
    private readonly redis: RedisConnections,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  dispatch(connection: Connection, frame: unknown, ack?: AckCallback): void {
    const id = commandIdOf(frame);
    let typeLabel = 'invalid';
    let timer: NodeJS.Timeout | undefined;
    let answered = false;
    const answer = (response: Ack): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      this.metrics.commands.inc({ type: typeLabel, outcome: response.ok ? 'ok' : response.error.code });
      if (ack) ack(response);
      // Without an ack callback only an error is worth telling, as `command_error`.
      else if (!response.ok) connection.emit('command_error', { ...(id !== undefined ? { id } : {}), error: response.error });
    };

    const limit = (connection.data.limiter ??= new RateLimiter(this.config.limits.commandsPerSecond)).take();
    if (limit.flood) {
      answer(failure(new ProtocolError(ErrorCode.RATE_LIMITED, 'command flood: connection closed', undefined, 1000)));
      this.logger.warn({ msg: 'closing a flooding connection', connectionId: connection.id, userId: connection.data.auth.userId });
      connection.disconnect(true, 'flood');
      return;
    }
    if (!limit.allowed) {
      const message = `more than ${this.config.limits.commandsPerSecond} commands per second`;
      return answer(failure(new ProtocolError(ErrorCode.RATE_LIMITED, message, undefined, limit.retryAfterMs)));
    }

    let parsed: ParsedCommand;
    try {
      parsed = this.parse(frame);
    } catch (error) {
      return answer(failure(error));
    }
    typeLabel = parsed.type;
    const timeoutMs = this.config.limits.commandTimeoutMs;
    timer = setTimeout(
      () => answer(failure(new ProtocolError(ErrorCode.TIMEOUT, `command ${parsed.id} took longer than ${timeoutMs} ms`, undefined, 1000))),
      timeoutMs,
    );
    void this.run(connection, parsed).then(({ ack: response, outcome }) => {
      if (answered) {
        // The ack already went out as a timeout: undo what the late success set up.
        if (response.ok) outcome?.abandon?.();
        return;
      }
      answer(response);
      if (response.ok) outcome?.afterAck?.();
    });
  }

  /** Checks the frame and its payload; throws a ProtocolError for the ack. */
  private parse(frame: unknown): ParsedCommand {
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
      throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'a command is an object { v, id, type, payload }');
    }
    const f = frame as Record<string, unknown>;
    const violations = Object.keys(f)
      .filter((key) => !FRAME_FIELDS.has(key))
      .map((field) => ({ field, constraint: 'whitelistValidation', message: `property ${field} should not exist` }));
    if (f.v !== PROTOCOL_VERSION) violations.push({ field: 'v', constraint: 'equals', message: `v must be ${PROTOCOL_VERSION}` });
    if (typeof f.id !== 'string' || !COMMAND_ID_PATTERN.test(f.id)) {
      violations.push({ field: 'id', constraint: 'matches', message: 'id must match [A-Za-z0-9_.:-]{1,128}' });
    }
    if (typeof f.type !== 'string') violations.push({ field: 'type', constraint: 'isString', message: 'type must be a string' });
    if (violations.length > 0) throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'invalid command frame', violations);
    if (!isCommandType(f.type)) throw new ProtocolError(ErrorCode.UNKNOWN_COMMAND, `unknown command type ${JSON.stringify(f.type).slice(0, 80)}`);

    const payload = f.payload ?? {};
    const size = jsonBytes(payload);
    if (size !== undefined && size > this.config.limits.maxPayloadBytes) {
      throw new ProtocolError(ErrorCode.PAYLOAD_TOO_LARGE, `payload is ${size} bytes; the limit is ${this.config.limits.maxPayloadBytes}`);
    }
    const validation = validateCommandPayload(f.type, payload);
    if (!validation.ok) throw new ProtocolError(ErrorCode.VALIDATION_FAILED, `invalid ${f.type} payload`, validation.violations);
    return { id: f.id as string, type: f.type, payload: validation.value };
  }

  private async run(connection: Connection, command: ParsedCommand): Promise<{ ack: Ack; outcome?: CommandOutcome }> {
    try {
      if (!LOCAL_COMMANDS.has(command.type) && !this.redis.ready) {
        throw new ProtocolError(ErrorCode.UNAVAILABLE, 'the backplane is unavailable; retry shortly', undefined, 1000);
      }
      const handler = this.handlers.byType[command.type] as (ctx: unknown, payload: unknown) => Promise<CommandOutcome>;
      const ctx = { connection, commandId: command.id };
      if (IDEMPOTENT_COMMANDS.has(command.type)) {
        const ack = await this.idempotency.runOnce(connection.data.auth.userId, command.id, command.type, command.payload, async () => ({
          ok: true,
          result: (await handler(ctx, command.payload)).result,
        }));
        return { ack };
      }
      const outcome = await handler(ctx, command.payload);
      return { ack: { ok: true, result: outcome.result }, outcome };
    } catch (error) {
      if (!knownError(error)) {
        this.logger.error({ msg: 'command failed', type: command.type, commandId: command.id, err: error instanceof Error ? error.stack : String(error) });
      }
      return { ack: failure(error) };
    }
  }
}

interface ParsedCommand {
  id: string;
  type: CommandType;
  payload: unknown;
}

function failure(error: unknown): { ok: false; error: ErrorBody } {
  return { ok: false, error: errorBody(error) };
}

/**
 * The payload's size as JSON, or undefined when JSON.stringify cannot walk it: a frame
 * parses (JSON.parse does not recurse) into values nested far deeper than JSON.stringify can
 * serialize. Validation then refuses such a payload with a maxDepth violation.
 */
function jsonBytes(payload: unknown): number | undefined {
  try {
    return Buffer.byteLength(JSON.stringify(payload) ?? '');
  } catch {
    return undefined;
  }
}

function commandIdOf(frame: unknown): string | undefined {
  const id = typeof frame === 'object' && frame !== null ? (frame as { id?: unknown }).id : undefined;
  return typeof id === 'string' && COMMAND_ID_PATTERN.test(id) ? id : undefined;
}
