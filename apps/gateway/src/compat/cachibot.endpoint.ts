import { Injectable } from '@nestjs/common';
import {
  type BotEvent,
  type BotState,
  botStream,
  type CommandPayload,
  type Envelope,
  type ErrorBody,
  ErrorCode,
  initialBotState,
  isValidId,
  ProtocolError,
  type ServerToClientEvents,
} from '@app/protocol';
import type { PlainConnection } from '../plain-ws/plain-connection';
import { matchExactPath, type PlainEndpoint } from '../plain-ws/plain-endpoint';
import { PlainWsServer } from '../plain-ws/plain-ws.server';
import { ConnectionCore } from '../realtime/connection-core';
import { type CachiBotFrame, cachiBotErrorFrame, cachiBotFrame, type CachiBotRequest, cachiBotRequestOf, cachiBotResyncFrames } from './cachibot.frames';
import { BINARY_FRAME, connectionNotice, frameFields, invalid, missingBot } from './client-frames';
import { BoundedMap, CompatLink, mapSafely, resultOf, TOO_MANY_WAITING } from './compat-link';

export const CACHIBOT_PATH = '/compat/cachibot/ws';

/** One CachiBot socket: its bot, the runs it started, and the chat ids its dashboard made. */
class CachiBotLink {
  /** Runs this socket started and not seen end, oldest first: `cancel` without a `runId` stops the newest. */
  readonly runs = new BoundedMap<string, true>(16);
  /** A chat id the dashboard made itself → the session its first message opened, and back. */
  readonly sessionOfChat = new BoundedMap<string, string>(64);
  readonly chatOfSession = new BoundedMap<string, string>(64);

  constructor(
    readonly link: CompatLink,
    readonly botId: string | undefined,
  ) {}

  chatIdOf = (sessionId: string): string => this.chatOfSession.get(sessionId) ?? sessionId;
}

/**
 * `/compat/cachibot/ws?bot=<botId>` (PROTOCOL.md §13): CachiBot's `{ type, payload }` socket
 * over `bot:<botId>`, showing the whole bot (every frame names its `chatId`). On every
 * (re)connect it subscribes with a snapshot and, from the subscribe's ack — before any live
 * event —, sends the approvals still waiting as `approval_needed`. Client frames become
 * `chat`, `cancel` and `approval` commands; a failure comes back as CachiBot's `error`.
 */
@Injectable()
export class CachiBotEndpoint implements PlainEndpoint {
  readonly name = 'cachibot';
  readonly acceptsAuthFrame = false;
  readonly coreResumesSession = false;

  constructor(
    private readonly core: ConnectionCore,
    server: PlainWsServer,
  ) {
    server.register(this);
  }

  match(pathname: string): Record<string, string> | null {
    return matchExactPath(pathname, CACHIBOT_PATH);
  }

  opened(connection: PlainConnection, _params: Record<string, string>, query: URLSearchParams): void {
    const bot = query.get('bot');
    const state = new CachiBotLink(new CompatLink(connection, this.core, 'cb'), isValidId(bot) ? bot : undefined);
    connection.state = state;
    const fail = (error: ErrorBody) => send(connection, cachiBotErrorFrame(error));
    if (state.botId === undefined) return fail(missingBot().toBody());
    const stream = botStream(state.botId);
    state.link.enqueue(
      () =>
        new Promise<void>((resolve) =>
          state.link.subscribe(stream, (ack) => {
            if (!ack.ok) fail(ack.error);
            else
              for (const frame of cachiBotResyncFrames((ack.result.snapshot as BotState | undefined) ?? initialBotState(), state.chatIdOf))
                send(connection, frame);
            resolve();
          }),
        ),
      fail,
    );
  }

  encode<E extends keyof ServerToClientEvents>(connection: PlainConnection, event: E, payload: Parameters<ServerToClientEvents[E]>[0]): string | undefined {
    if (event !== 'event') {
      const notice = connectionNotice(event, payload);
      return notice && JSON.stringify(cachiBotErrorFrame(notice));
    }
    const state = connection.state as CachiBotLink;
    const envelope = payload as Envelope;
    if (!state.link.follows(envelope)) return undefined;
    return mapSafely(envelope.type, () => {
      const botEvent = { type: envelope.type, payload: envelope.payload } as BotEvent;
      if (botEvent.type === 'done') state.runs.delete(botEvent.payload.runId);
      const frame = cachiBotFrame(botEvent, { botId: state.botId as string, eventId: envelope.id, chatIdOf: state.chatIdOf });
      return frame && JSON.stringify(frame);
    });
  }

  frame(connection: PlainConnection, frame: unknown, raw: string): void {
    const state = connection.state as CachiBotLink;
    const fail = (error: ErrorBody) => send(connection, cachiBotErrorFrame(error));
    const queued = state.link.enqueue(() => this.act(state, cachiBotRequestOf(frameFields(frame, raw))), fail);
    if (!queued) fail(TOO_MANY_WAITING);
  }

  binaryFrame(connection: PlainConnection): void {
    send(connection, cachiBotErrorFrame(BINARY_FRAME));
  }

  private async act(state: CachiBotLink, request: CachiBotRequest): Promise<void> {
    const { link, botId } = state;
    if (botId === undefined) throw missingBot();
    switch (request.type) {
      case 'chat': {
        if (request.botId !== undefined && request.botId !== botId) throw invalid('payload.botId', 'equals', `this socket serves bot ${botId}`);
        const { runId } = await this.chat(state, botId, request);
        state.runs.set(runId, true);
        return;
      }
      case 'cancel': {
        const runId = request.runId ?? [...state.runs.keys()].at(-1);
        if (runId === undefined) throw new ProtocolError(ErrorCode.NOT_FOUND, 'no run started on this socket is in progress; name one with payload.runId');
        resultOf(await link.command('cancel', { runId }));
        return;
      }
      case 'approval': {
        const { type: _type, ...payload } = request;
        resultOf(await link.command('approval', payload, link.idFor('approval', request.approvalId)));
        return;
      }
    }
  }

  /**
   * A CachiBot dashboard names a new chat itself and sends its first message with that
   * `chatId`, which no session has: that message opens a session (before the chat, so every
   * frame of the run already names the dashboard's chat id) and the socket remembers which.
   */
  private async chat(state: CachiBotLink, botId: string, request: Extract<CachiBotRequest, { type: 'chat' }>) {
    const { link } = state;
    const options: Omit<CommandPayload<'chat'>, 'botId' | 'content'> = {
      ...(request.model !== undefined ? { model: request.model } : {}),
      ...(request.systemPrompt !== undefined ? { systemPrompt: request.systemPrompt } : {}),
    };
    const chatId = request.chatId;
    const sessionId = chatId === undefined ? undefined : (state.sessionOfChat.get(chatId) ?? chatId);
    const ack = await link.command('chat', { botId, content: request.content, ...options, ...(sessionId !== undefined ? { sessionId } : {}) });
    if (ack.ok || ack.error.code !== ErrorCode.NOT_FOUND || chatId === undefined || state.sessionOfChat.has(chatId)) return resultOf(ack);

    const opened = resultOf(await link.command('new_session', { botId, title: request.content.slice(0, 60) })).sessionId;
    state.sessionOfChat.set(chatId, opened);
    state.chatOfSession.set(opened, chatId);
    return resultOf(await link.command('chat', { botId, content: request.content, ...options, sessionId: opened }));
  }
}

function send(connection: PlainConnection, frame: CachiBotFrame): void {
  connection.send(frame);
}
