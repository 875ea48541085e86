import type { Envelope } from '../envelope';
import type { StreamKind } from '../streams';
import { type BotState, foldBot, initialBotState } from './bot.reducer';
import { type DagState, foldDag, initialDagState } from './dag.reducer';

export * from './bot.reducer';
export * from './dag.reducer';

export type StreamState = BotState | DagState;
export interface StreamStateByKind {
  bot: BotState;
  dag: DagState;
}

type FoldableEvent = Pick<Envelope, 'type' | 'payload' | 'ts'>;

export function initialState<K extends StreamKind>(kind: K): StreamStateByKind[K];
export function initialState(kind: StreamKind): StreamState {
  return kind === 'bot' ? initialBotState() : initialDagState();
}

/**
 * The one fold used for snapshots (server) and stores (client). An event its reducer
 * cannot apply — a payload that breaks the schema, from a publisher that skipped
 * validation — leaves the state unchanged on both sides alike, so they never diverge.
 */
export function foldEvent<K extends StreamKind>(kind: K, state: StreamStateByKind[K], event: FoldableEvent): StreamStateByKind[K];
export function foldEvent(kind: StreamKind, state: StreamState, event: FoldableEvent): StreamState {
  try {
    return kind === 'bot' ? foldBot(state as BotState, event) : foldDag(state as DagState, event);
  } catch {
    return state;
  }
}

export function foldEvents<K extends StreamKind>(kind: K, state: StreamStateByKind[K], events: Iterable<FoldableEvent>): StreamStateByKind[K] {
  let current = state;
  for (const event of events) current = foldEvent(kind, current, event);
  return current;
}
