import fc from 'fast-check';
import { COMMAND_TYPES, type CommandType } from '../commands';
import { validateEventDraft } from '../event-schemas';
import { hostilePayloadArb, hostileValueArb, VALID_PAYLOADS } from '../testing/hostile-commands';
import { validateCommandPayload, VALIDATOR_FAILED } from './validate';

/**
 * Whatever a client sends, validation answers — ok, or violations a client can read — and
 * never throws (which the gateway would answer INTERNAL) or writes to a prototype.
 */
const PROTOTYPES: Array<[string, object]> = [
  ['Object', Object.prototype],
  ['Array', Array.prototype],
  ['Function', Function.prototype],
  ['String', String.prototype],
];
const ownNames = () => PROTOTYPES.map(([name, prototype]) => `${name}: ${Object.getOwnPropertyNames(prototype).sort().join(',')}`);
const pristine = ownNames();

function expectUnpolluted(): void {
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(([] as unknown as Record<string, unknown>).polluted).toBeUndefined();
  expect(ownNames()).toEqual(pristine);
}

function expectAnswered(type: CommandType, payload: unknown): void {
  const result = validateCommandPayload(type, payload);
  if (result.ok) {
    expect(result.value).toBe(payload);
  } else {
    expect(result.violations.length).toBeGreaterThan(0);
    for (const v of result.violations) {
      expect([typeof v.field, typeof v.constraint, typeof v.message]).toEqual(['string', 'string', 'string']);
      expect(v.field.length * v.constraint.length * v.message.length).toBeGreaterThan(0);
      // The last-resort catch must never be what answered: that would be a validator bug.
      expect(v.constraint).not.toBe(VALIDATOR_FAILED);
    }
  }
  expectUnpolluted();
}

describe.each(COMMAND_TYPES.map((type) => [type]))('validateCommandPayload(%s)', (type) => {
  it('accepts every valid payload (keeps the generators honest)', () => {
    fc.assert(
      fc.property(VALID_PAYLOADS[type] as fc.Arbitrary<unknown>, (payload) => {
        expect(validateCommandPayload(type, payload)).toEqual({ ok: true, value: payload });
      }),
      { numRuns: 50 },
    );
  });

  it('answers hostile payloads with ok or readable violations, never throwing or polluting', () => {
    fc.assert(
      fc.property(hostilePayloadArb(type), (payload) => expectAnswered(type, payload)),
      { numRuns: 150 },
    );
  });

  it('answers the same payloads as they arrive off the wire (own __proto__ keys included)', () => {
    // JSON.parse defines `__proto__` as an own key where an object literal would set the prototype.
    const wire = hostilePayloadArb(type).filter((payload) => {
      try {
        return JSON.stringify(payload) !== undefined;
      } catch {
        return false; // nested too deep for JSON.stringify: the literal form above covers it
      }
    });
    fc.assert(
      fc.property(wire, (payload) => expectAnswered(type, JSON.parse(JSON.stringify(payload)))),
      { numRuns: 100 },
    );
  });
});

describe('validateEventDraft', () => {
  it('never throws or pollutes on hostile payloads', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('bot' as const, 'dag' as const),
        fc.constantFrom('tool_start', 'node_state', 'dag_mutated', 'custom'),
        hostileValueArb,
        (kind, type, payload) => {
          for (const v of validateEventDraft(kind, type, payload)) expect(v.field.length * v.constraint.length * v.message.length).toBeGreaterThan(0);
          expectUnpolluted();
        },
      ),
      { numRuns: 200 },
    );
  });
});
