import { Injectable } from '@nestjs/common';
import { derivedId, producerIds, singleEvent, StreamPublisher } from '@app/backplane';
import { botStream, ErrorCode, isValidId, ProtocolError } from '@app/protocol';
import { InboundMessageDto, validateAs } from '@app/protocol/dto';
import { randomUUID } from 'node:crypto';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { BotCommands } from './bot-commands.service';
import { SessionsService } from './sessions.service';

export interface InboundAccepted {
  sessionId: string;
  runId: string;
  jobId: string;
  seq: number;
}

/**
 * Messages from external platforms (`POST /v1/bots/:botId/inbound`): each chat of a
 * platform maps to one session; the message is published as `platform_message` and
 * answered by an agent run, as a `chat` would be.
 */
@Injectable()
export class InboundService {
  constructor(
    private readonly sessions: SessionsService,
    private readonly bots: BotCommands,
    private readonly publisher: StreamPublisher,
    private readonly metrics: GatewayMetrics,
  ) {}

  async receive(botId: string, body: unknown, idempotencyKey?: string): Promise<InboundAccepted> {
    if (!isValidId(botId)) throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'botId must match [A-Za-z0-9_.-]{1,128}');
    const validation = validateAs<InboundMessageDto>(InboundMessageDto, body);
    if (!validation.ok) throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'invalid inbound message', validation.violations);
    const message = validation.value;
    const platformUser = `${message.platform}:${message.userId ?? message.chatId}`;

    const sessionId = message.sessionId ?? derivedId('session', `${botId}/${message.platform}`, message.chatId);
    await this.sessions.create(botId, sessionId, `${message.platform} ${message.chatId}`.slice(0, 60), platformUser);
    const key = idempotencyKey ?? randomUUID();
    const published = await this.publisher.publish(
      botStream(botId),
      { type: 'platform_message', payload: { sessionId, platform: message.platform, chatId: message.chatId, role: 'user', content: message.content } },
      // The caller's key, in a namespace of its own: apart from the system's and the publish API's.
      { producer: singleEvent(producerIds.inbound(key)) },
    );
    if (!published.duplicate) this.metrics.eventsPublished.inc();
    const runId = derivedId('run', platformUser, key);
    await this.bots.startRun({ runId, botId, sessionId, userId: platformUser, content: message.content, messageId: published.id, source: 'inbound' });
    return { sessionId, runId, jobId: runId, seq: published.seq };
  }
}
