import { Injectable } from '@nestjs/common';
import { DomainStore, type SessionRecord, StreamPublisher } from '@app/backplane';
import { botStream, ErrorCode, ProtocolError, type SessionHistory } from '@app/protocol';
import { type AuthContext, requireAccess } from '../auth/auth-context';
import { GatewayMetrics } from '../metrics/gateway-metrics';

/** Chat sessions of bots: creation (announced as `session_created`) and history. */
@Injectable()
export class SessionsService {
  constructor(
    private readonly store: DomainStore,
    private readonly publisher: StreamPublisher,
    private readonly metrics: GatewayMetrics,
  ) {}

  /**
   * Creates the session once and announces it once: a retry with the same id neither
   * duplicates it nor re-announces it — but does announce it if the first try failed to.
   */
  async create(botId: string, sessionId: string, title: string, userId: string): Promise<void> {
    const created = await this.store.createSession(sessionId, { botId, title, createdBy: userId, createdAt: Date.now() });
    if (!created && (await this.store.getSession(sessionId))?.announced) return;
    const published = await this.publisher.publish(
      botStream(botId),
      { type: 'session_created', payload: { sessionId, title } },
      { idempotencyKey: `session-created.${sessionId}` },
    );
    await this.store.markSessionAnnounced(sessionId);
    if (!published.duplicate) this.metrics.eventsPublished.inc();
  }

  /** The session, if it exists and the caller may read its bot. */
  async readable(auth: AuthContext, sessionId: string): Promise<SessionRecord> {
    const session = await this.store.getSession(sessionId);
    if (!session) throw new ProtocolError(ErrorCode.NOT_FOUND, `no session ${sessionId}`);
    requireAccess(auth, botStream(session.botId));
    return session;
  }

  async history(auth: AuthContext, sessionId: string): Promise<SessionHistory> {
    const session = await this.readable(auth, sessionId);
    return { sessionId, botId: session.botId, messages: await this.store.sessionMessages(sessionId) };
  }
}
