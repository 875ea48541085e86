import { Injectable } from '@nestjs/common';
import { type CommandPayload, type CommandResult, type CommandType } from '@app/protocol';
import { BotCommands } from '../domain/bot-commands.service';
import { DagCommands } from '../domain/dag-commands.service';
import { SessionsService } from '../domain/sessions.service';
import { requireAccess } from '../auth/auth-context';
import { ConnectionAuth } from '../auth/connection-auth.service';
import type { Connection } from '../realtime/connection';
import { PresenceService } from '../streams/presence.service';
import { SubscriptionService } from '../streams/subscription.service';
import type { CommandOutcome } from './command-outcome';

export interface CommandContext {
  connection: Connection;
  commandId: string;
}

type Handler<T extends CommandType> = (ctx: CommandContext, payload: CommandPayload<T>) => Promise<CommandOutcome<CommandResult<T>>>;
export type CommandHandlerMap = { [T in CommandType]: Handler<T> };

/**
 * Commands whose effect must happen once per command id (PROTOCOL.md §3). The others act on
 * the connection itself (subscribe, refresh_token…) or only read, so a retry — typically
 * on a new connection — must run again.
 */
export const IDEMPOTENT_COMMANDS: ReadonlySet<CommandType> = new Set<CommandType>([
  'chat',
  'cancel',
  'approval',
  'plan_response',
  'new_session',
  'start_execution',
  'human_decision',
  'pause_execution',
  'resume_execution',
  'cancel_execution',
]);

/** Commands that need no Redis: they are answered even while the backplane is down. */
export const LOCAL_COMMANDS: ReadonlySet<CommandType> = new Set<CommandType>(['refresh_token', 'unsubscribe']);

const done = <T>(result: T): CommandOutcome<T> => ({ result });

/** One handler per command type; each delegates to the service that owns the feature. */
@Injectable()
export class CommandHandlers {
  readonly byType: CommandHandlerMap;

  constructor(
    subscriptions: SubscriptionService,
    presence: PresenceService,
    connectionAuth: ConnectionAuth,
    sessions: SessionsService,
    bots: BotCommands,
    dags: DagCommands,
  ) {
    const identity = (ctx: CommandContext) => ({ auth: ctx.connection.data.auth, commandId: ctx.commandId });
    this.byType = {
      subscribe: (ctx, p) => subscriptions.subscribe(ctx.connection, p),
      unsubscribe: async (ctx, p) => {
        subscriptions.unsubscribe(ctx.connection, p.stream);
        return done({});
      },
      presence: async (ctx, p) => {
        requireAccess(ctx.connection.data.auth, p.stream);
        return done({ members: await presence.members(p.stream) });
      },
      refresh_token: async (ctx, p) => done(await connectionAuth.refresh(ctx.connection, p.token)),
      chat: async (ctx, p) => done(await bots.chat(identity(ctx), p)),
      cancel: async (ctx, p) => done(await bots.cancel(identity(ctx), p)),
      approval: async (ctx, p) => done(await bots.approval(identity(ctx), p)),
      plan_response: async (ctx, p) => done(await bots.planResponse(identity(ctx), p)),
      new_session: async (ctx, p) => done(await bots.newSession(identity(ctx), p)),
      switch_session: async (ctx, p) => done(await sessions.history(ctx.connection.data.auth, p.sessionId)),
      start_execution: async (ctx, p) => done(await dags.start(identity(ctx), p)),
      human_decision: async (ctx, p) => done(await dags.humanDecision(identity(ctx), p)),
      pause_execution: async (ctx, p) => done(await dags.steer(identity(ctx), 'pause', p.executionId)),
      resume_execution: async (ctx, p) => done(await dags.steer(identity(ctx), 'resume', p.executionId)),
      cancel_execution: async (ctx, p) => done(await dags.steer(identity(ctx), 'cancel', p.executionId)),
    };
  }
}
