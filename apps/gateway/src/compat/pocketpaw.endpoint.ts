import { Injectable } from '@nestjs/common';
import {
  type Ack,
  type BotEvent,
  type BotState,
  botStream,
  type Envelope,
  type ErrorBody,
  ErrorCode,
  initialBotState,
  isValidId,
  type RunUsage,
  type ServerToClientEvents,
  type SessionHistory,
  type SubscribeResult,
} from '@app/protocol';
import type { PlainConnection } from '../plain-ws/plain-connection';
import { matchExactPath, type PlainEndpoint } from '../plain-ws/plain-endpoint';
import { PlainWsServer } from '../plain-ws/plain-ws.server';
import { ConnectionCore } from '../realtime/connection-core';
import { BINARY_FRAME, connectionNotice, frameFields, missingBot } from './client-frames';
import { BoundedMap, CompatLink, mapSafely, resultOf, TOO_MANY_WAITING } from './compat-link';
import {
  concernsSession,
  type PocketPawAction,
  pocketPawActionOf,
  pocketPawErrorFrame,
  type PocketPawFrame,
  pocketPawFrame,
  sessionResyncFrames,
  sessionSwitchedFrame,
} from './pocketpaw.frames';

export const POCKETPAW_PATH = '/compat/pocketpaw/ws';
/** Events held while a resync reads the session's history; a burst past this cannot be caught up in bounded memory. */
const MAX_HELD_EVENTS = 10_000;

/** One PocketPaw socket: its bot, the session it shows, and what its frames need to remember. */
class PocketPawLink {
  /** The session whose events this socket shows; undefined until the first message or switch. */
  sessionId: string | undefined;
  /** Live events waiting while a resync sends the session's state (null when not resyncing). */
  held: Envelope[] | null = null;
  readonly tools = new BoundedMap<string, string>(64);
  readonly usage = new BoundedMap<string, RunUsage>(16);

  constructor(
    readonly link: CompatLink,
    readonly botId: string | undefined,
  ) {}
}

/**
 * `/compat/pocketpaw/ws?bot=<botId>&resume_session=<sessionId>` (PROTOCOL.md §13): a session
 * socket over `bot:<botId>`. It shows the events of its current session (and the bot's inbox,
 * `platform_message`, from any session); `message` chats in that session (making one first if
 * there is none), `new_session` and `switch_session` change it.
 *
 * Entering a session (`resume_session` at connect, `switch_session`) is a resync: subscribe
 * the bot's stream afresh (snapshot at S), hold the live events after S, read the session's
 * history, send `session_switched` with it, then the replies still streaming so far and the
 * plans waiting (from the snapshot), then the held events — less the chunks of replies the
 * history already holds whole. Nothing is missed and nothing is shown twice.
 */
@Injectable()
export class PocketPawEndpoint implements PlainEndpoint {
  readonly name = 'pocketpaw';
  readonly acceptsAuthFrame = false;
  readonly coreResumesSession = false;

  constructor(
    private readonly core: ConnectionCore,
    server: PlainWsServer,
  ) {
    server.register(this);
  }

  match(pathname: string): Record<string, string> | null {
    return matchExactPath(pathname, POCKETPAW_PATH);
  }

  opened(connection: PlainConnection, _params: Record<string, string>, query: URLSearchParams): void {
    const bot = query.get('bot');
    const state = new PocketPawLink(new CompatLink(connection, this.core, 'pp'), isValidId(bot) ? bot : undefined);
    connection.state = state;
    if (state.botId === undefined) return send(connection, pocketPawErrorFrame(missingBot().toBody()));
    const resume = query.get('resume_session') ?? undefined;
    state.link.enqueue(
      () => this.resync(state, resume),
      (error) => send(connection, pocketPawErrorFrame(error)),
    );
  }

  encode<E extends keyof ServerToClientEvents>(connection: PlainConnection, event: E, payload: Parameters<ServerToClientEvents[E]>[0]): string | undefined {
    if (event !== 'event') {
      const notice = connectionNotice(event, payload);
      return notice && JSON.stringify(pocketPawErrorFrame(notice));
    }
    const state = connection.state as PocketPawLink;
    if (!state.link.follows(payload as Envelope)) return undefined;
    if (state.held) {
      if (state.held.length >= MAX_HELD_EVENTS) connection.end('slow_reader');
      else state.held.push(payload as Envelope);
      return undefined;
    }
    return this.encodeEvent(state, payload as Envelope);
  }

  frame(connection: PlainConnection, frame: unknown, raw: string): void {
    const state = connection.state as PocketPawLink;
    const named = typeof (frame as { action?: unknown } | undefined)?.action === 'string' ? (frame as { action: string }).action : undefined;
    const fail = (error: ErrorBody) => send(connection, pocketPawErrorFrame(error, named));
    const queued = state.link.enqueue(() => this.act(state, pocketPawActionOf(frameFields(frame, raw))), fail);
    if (!queued) fail(TOO_MANY_WAITING);
  }

  binaryFrame(connection: PlainConnection): void {
    send(connection, pocketPawErrorFrame(BINARY_FRAME));
  }

  private async act(state: PocketPawLink, action: PocketPawAction): Promise<void> {
    const { link } = state;
    const botId = state.botId;
    if (botId === undefined) throw missingBot();
    switch (action.action) {
      case 'message': {
        // A session first, so this socket shows the run from its first event.
        state.sessionId ??= resultOf(await link.command('new_session', { botId, title: action.content.slice(0, 60) })).sessionId;
        resultOf(await link.command('chat', { botId, content: action.content, sessionId: state.sessionId }));
        return;
      }
      case 'new_session': {
        const { sessionId } = resultOf(await link.command('new_session', { botId, ...(action.title !== undefined ? { title: action.title } : {}) }));
        state.sessionId = sessionId;
        send(link.connection, { type: 'session_switched', session_id: sessionId, messages: [] });
        return;
      }
      case 'switch_session':
        return this.resync(state, action.sessionId);
      case 'plan_response': {
        const { action: _action, ...payload } = action;
        resultOf(await link.command('plan_response', payload, link.idFor('plan', action.planId)));
        return;
      }
    }
  }

  /** Subscribes the bot's stream afresh and, when `sessionId` is given, enters that session (see the class comment). */
  private async resync(state: PocketPawLink, sessionId: string | undefined): Promise<void> {
    const { link } = state;
    const subscribed = await new Promise<Ack<SubscribeResult>>((resolve) =>
      link.subscribe(botStream(state.botId as string), (ack) => {
        // From the ack on, the core releases the events after the snapshot: hold them.
        if (ack.ok) state.held = [];
        resolve(ack);
      }),
    );
    if (!subscribed.ok) return send(link.connection, pocketPawErrorFrame(subscribed.error, 'subscribe'));

    let inHistory = new Set<string>();
    try {
      let history: SessionHistory | undefined;
      if (sessionId !== undefined) {
        const ack = await link.command('switch_session', { sessionId });
        // This socket shows one bot: a session of another (one the token may read) is not here.
        if (ack.ok && ack.result.botId !== state.botId) {
          send(link.connection, pocketPawErrorFrame({ code: ErrorCode.NOT_FOUND, message: `no session ${sessionId} of bot ${state.botId}` }, 'switch_session'));
        } else if (ack.ok) history = ack.result;
        else send(link.connection, pocketPawErrorFrame(ack.error, 'switch_session'));
      }
      if (history) {
        state.sessionId = history.sessionId;
        inHistory = new Set(history.messages.map((m) => m.messageId));
        const snapshot = (subscribed.result.snapshot as BotState | undefined) ?? initialBotState();
        for (const run of Object.values(snapshot.activeRuns)) {
          if (run.sessionId !== history.sessionId) continue;
          for (const [toolCallId, call] of Object.entries(run.tools)) state.tools.set(toolCallId, call.tool);
          if (run.usage) state.usage.set(run.runId, run.usage);
        }
        send(link.connection, sessionSwitchedFrame(history));
        for (const frame of sessionResyncFrames(snapshot, history.sessionId, inHistory)) send(link.connection, frame);
      }
    } finally {
      const held = state.held ?? [];
      state.held = null;
      for (const envelope of held) {
        // A reply the history holds whole was just sent in `session_switched`.
        if (envelope.type === 'message' && inHistory.has((envelope.payload as { messageId?: string }).messageId ?? '')) continue;
        const text = this.encodeEvent(state, envelope);
        if (text !== undefined) link.connection.sendText(text);
      }
    }
  }

  private encodeEvent(state: PocketPawLink, envelope: Envelope): string | undefined {
    return mapSafely(envelope.type, () => {
      const event = { type: envelope.type, payload: envelope.payload } as BotEvent;
      const mine = concernsSession(event, state.sessionId);
      if (mine && event.type === 'tool_start') state.tools.set(event.payload.toolCallId, event.payload.tool);
      if (mine && event.type === 'usage') state.usage.set(event.payload.runId, event.payload);
      const frame = mine ? pocketPawFrame(event, { toolOf: (id) => state.tools.get(id), usageOf: (id) => state.usage.get(id) }) : undefined;
      if (event.type === 'tool_end') state.tools.delete(event.payload.toolCallId);
      if (event.type === 'done') state.usage.delete(event.payload.runId);
      return frame && JSON.stringify(frame);
    });
  }
}

function send(connection: PlainConnection, frame: PocketPawFrame): void {
  connection.send(frame);
}
