import fc from 'fast-check';
import { validateEventDraft } from '../event-schemas';
import type { BotEvent } from '../events/bot';
import type { DagEvent } from '../events/dag';
import { botEventArb, dagEventArb, withTimestamps } from '../testing/arbitraries';
import { foldBot, initialBotState } from './bot.reducer';
import { foldDag, initialDagState } from './dag.reducer';
import { foldEvents, initialState } from './index';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.getOwnPropertyNames(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

const roundTrip = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

describe.each([
  { kind: 'bot' as const, arb: botEventArb as fc.Arbitrary<BotEvent | DagEvent>, fold: foldBot, init: initialBotState },
  { kind: 'dag' as const, arb: dagEventArb as fc.Arbitrary<BotEvent | DagEvent>, fold: foldDag, init: initialDagState },
])('$kind reducer', ({ kind, arb, fold, init }) => {
  const eventLists = fc.array(arb, { maxLength: 60 }).map((events) => withTimestamps(events));

  it('generates only events that pass the contract schema (keeps the generators honest)', () => {
    fc.assert(fc.property(arb, (event) => expect(validateEventDraft(kind, event.type, event.payload)).toEqual([])));
  });

  it('folding any split in two steps, through a JSON snapshot, equals folding in one', () => {
    fc.assert(
      fc.property(eventLists, fc.nat(), (events, at) => {
        const split = events.length === 0 ? 0 : at % (events.length + 1);
        const whole = foldEvents(kind, initialState(kind), events);
        const snapshot = roundTrip(foldEvents(kind, initialState(kind), events.slice(0, split)));
        const resumed = foldEvents(kind, snapshot, events.slice(split));
        expect(resumed).toEqual(whole);
        // The snapshot survives JSON without losing anything (no undefined, no Maps).
        expect(roundTrip(whole)).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });

  it('never mutates the state it is given and never throws on contract events', () => {
    fc.assert(
      fc.property(eventLists, (events) => {
        let state = deepFreeze(init()) as ReturnType<typeof init>;
        for (const event of events) {
          state = deepFreeze(fold(state as never, event) as ReturnType<typeof init>);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('leaves the state unchanged for an unknown event type or a malformed payload', () => {
    const state = foldEvents(kind, initialState(kind), []);
    expect(foldEvents(kind, state, [{ type: 'future_event', payload: { x: 1 }, ts: 1 }])).toBe(state);
    expect(foldEvents(kind, state, [{ type: kind === 'bot' ? 'done' : 'dag_mutated', payload: null, ts: 1 }])).toBe(state);
  });
});
