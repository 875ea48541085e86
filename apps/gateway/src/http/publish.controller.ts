import { Body, Controller, Headers, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { producerIds, singleEvent, StreamPublisher } from '@app/backplane';
import { ErrorCode, ProtocolError, validateEventDraft } from '@app/protocol';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { InboundService } from '../domain/inbound.service';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { BackplaneDeadline } from './backplane-deadline';
import { streamParam } from './stream-param';

const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.:-]{1,128}$/;
const BODY_FIELDS = new Set(['type', 'payload']);

/** Server-to-server publishing (PROTOCOL.md §7), behind API keys. */
@Controller('v1')
@UseGuards(ApiKeyGuard)
export class PublishController {
  constructor(
    private readonly publisher: StreamPublisher,
    private readonly inbound: InboundService,
    private readonly metrics: GatewayMetrics,
    private readonly deadline: BackplaneDeadline,
  ) {}

  /** Publishes one event into a stream; `Idempotency-Key` makes a retry return the first answer. */
  @Post('streams/:stream/events')
  @HttpCode(201)
  async publish(
    @Param('stream') name: string,
    @Body() body: unknown,
    @Headers('idempotency-key') idempotencyKey?: string,
  ): Promise<{ stream: string; seq: number; epoch: string; id: string }> {
    const stream = streamParam(name);
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'Idempotency-Key must match [A-Za-z0-9_.:-]{1,128}');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'the body must be { type, payload }');
    const { type, payload } = body as { type?: unknown; payload?: unknown };
    const violations = [
      ...Object.keys(body)
        .filter((k) => !BODY_FIELDS.has(k))
        .map((field) => ({ field, constraint: 'whitelistValidation', message: `property ${field} should not exist` })),
      ...validateEventDraft(stream.kind, type, payload),
    ];
    if (violations.length > 0) throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'invalid event', violations);

    const published = await this.deadline.run(() =>
      // The caller's key lives in the HTTP namespace: it cannot collide with the system's own.
      this.publisher.publish(stream.name, { type: type as string, payload }, idempotencyKey ? { producer: singleEvent(producerIds.http(idempotencyKey)) } : {}),
    );
    if (!published.duplicate) this.metrics.eventsPublished.inc();
    return { stream: published.stream, seq: published.seq, epoch: published.epoch, id: published.id };
  }

  /** A message from an external platform: published as `platform_message`, then queued as a run. */
  @Post('bots/:botId/inbound')
  @HttpCode(202)
  async inboundMessage(@Param('botId') botId: string, @Body() body: unknown, @Headers('idempotency-key') idempotencyKey?: string) {
    return this.deadline.run(() => this.inbound.receive(botId, body, idempotencyKey));
  }
}
