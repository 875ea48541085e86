import { ValidateBy } from 'class-validator';
import { MAX_JSON_DEPTH, MAX_SHAPE_VIOLATIONS } from '../json-shape';
import { validateAs, validateCommandPayload, VALIDATOR_FAILED } from './validate';
import { InboundMessageDto } from './command-payloads.dto';

describe('validateCommandPayload', () => {
  it('accepts a valid payload and hands back the plain object', () => {
    const payload = { botId: 'b1', content: 'hi', sessionId: 's-1' };
    expect(validateCommandPayload('chat', payload)).toEqual({ ok: true, value: payload });
  });

  it('refuses unknown fields, naming each', () => {
    const result = validateCommandPayload('cancel', { runId: 'r1', extra: 1, other: 'x' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.violations.map((v) => [v.field, v.constraint])).toEqual([
      ['extra', 'whitelistValidation'],
      ['other', 'whitelistValidation'],
    ]);
  });

  it('lists every invalid field with its constraint', () => {
    const result = validateCommandPayload('chat', { botId: 'bad id!', content: 42 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const fields = result.violations.map((v) => `${v.field}:${v.constraint}`);
    expect(fields).toEqual(expect.arrayContaining(['botId:matches', 'content:isString']));
  });

  it.each([null, 'text', 3, [1]])('refuses a payload that is not an object (%p)', (payload) => {
    expect(validateCommandPayload('chat', payload)).toEqual({
      ok: false,
      violations: [{ field: 'payload', constraint: 'isObject', message: 'payload must be an object' }],
    });
  });

  it('refuses null for an optional field (it may be left out, not nulled)', () => {
    const result = validateCommandPayload('subscribe', { stream: 'bot:b1', sinceSeq: null, epoch: 'e' });
    expect(result.ok ? [] : result.violations.map((v) => v.field)).toContain('sinceSeq');
    expect(validateCommandPayload('start_execution', { dag: { nodes: [{ id: 'a' }], edges: [] }, budgetUsd: null }).ok).toBe(false);
  });

  it('checks stream names in subscribe', () => {
    expect(validateCommandPayload('subscribe', { stream: 'bot:b1', sinceSeq: 3, epoch: 'e' }).ok).toBe(true);
    for (const stream of ['bot:', 'room:b1', 'bot:a b', `dag:${'x'.repeat(129)}`, 7]) {
      const result = validateCommandPayload('subscribe', { stream });
      expect(result.ok ? 'ok' : result.violations[0].field).toBe('stream');
    }
    const negative = validateCommandPayload('subscribe', { stream: 'bot:b1', sinceSeq: -1 });
    expect(negative.ok ? [] : negative.violations.map((v) => v.constraint)).toEqual(['min']);
  });

  it("answers a repeated flat payload as the first time, handing back the caller's own object", () => {
    const first = { stream: 'bot:again', sinceSeq: 2, epoch: 'e' };
    const second = { stream: 'bot:again', sinceSeq: 2, epoch: 'e' };
    expect(validateCommandPayload('subscribe', first)).toEqual({ ok: true, value: first });
    const again = validateCommandPayload('subscribe', second);
    expect(again.ok && again.value).toBe(second);
    // The same text under another command type is validated for that type.
    expect(validateCommandPayload('unsubscribe', first).ok).toBe(false);

    const bad = () => validateCommandPayload('subscribe', { stream: 'bot:again', sinceSeq: -2 });
    expect(bad()).toEqual(bad());
    expect(bad().ok).toBe(false);
    // Numbers whose JSON text names another value are validated each time.
    expect(validateCommandPayload('subscribe', { stream: 'bot:again', sinceSeq: Number.NaN }).ok).toBe(false);
    expect(validateCommandPayload('subscribe', { stream: 'bot:again', sinceSeq: null }).ok).toBe(false);
    expect(validateCommandPayload('subscribe', { stream: 'bot:again', sinceSeq: -0 }).ok).toBe(true);
  });

  it('validates nested DAG definitions and requires exactly one of dag and dagId', () => {
    const dag = { nodes: [{ id: 'a' }, { id: 'b', kind: 'task', config: { x: 1 } }], edges: [{ from: 'a', to: 'b' }] };
    expect(validateCommandPayload('start_execution', { dag, budgetUsd: 2 }).ok).toBe(true);
    expect(validateCommandPayload('start_execution', { dagId: 'stored-1' }).ok).toBe(true);

    const neither = validateCommandPayload('start_execution', {});
    expect(neither.ok).toBe(false);
    const both = validateCommandPayload('start_execution', { dag, dagId: 'd1' });
    expect(both.ok ? [] : both.violations.map((v) => `${v.field}:${v.constraint}`)).toEqual(['dagId:notTogetherWith']);

    const badNode = validateCommandPayload('start_execution', { dag: { nodes: [{ id: 'a', evil: true }], edges: [{ from: 'a' }] } });
    expect(badNode.ok ? [] : badNode.violations.map((v) => `${v.field}:${v.constraint}`)).toEqual(
      expect.arrayContaining(['dag.nodes.0.evil:whitelistValidation', 'dag.edges.0.to:matches']),
    );
  });

  it('requires the edited plan when a plan response is edit', () => {
    expect(validateCommandPayload('plan_response', { planId: 'p', response: 'approve' }).ok).toBe(true);
    expect(validateCommandPayload('plan_response', { planId: 'p', response: 'edit' }).ok).toBe(false);
    expect(validateCommandPayload('plan_response', { planId: 'p', response: 'edit', plan: '1. x' }).ok).toBe(true);
    expect(validateCommandPayload('plan_response', { planId: 'p', response: 'maybe' }).ok).toBe(false);
  });
});

/** `levels` objects (or arrays) inside each other around `leaf`: `nested(2)` is `{ a: { a: 1 } }`. */
function nested(levels: number, leaf: unknown = 1, as: 'object' | 'array' = 'object'): unknown {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = as === 'array' ? [value] : { a: value };
  return value;
}

function fieldsOf(result: { ok: boolean; violations?: Array<{ field: string; constraint: string }> }): string[] {
  return result.ok ? [] : (result.violations ?? []).map((v) => `${v.field}:${v.constraint}`);
}

describe('validateCommandPayload on hostile payloads', () => {
  afterEach(() => {
    // Nothing may reach Object.prototype, whatever the payload held.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('refuses the fuzzed plan_response that crashed class-transformer, naming the keys', () => {
    const result = validateCommandPayload('plan_response', { planId: [null, { constructor: true, prototype: 1.5 }] });
    expect(fieldsOf(result)).toEqual(['planId.1.constructor:whitelistValidation', 'planId.1.prototype:whitelistValidation']);
    const wire = JSON.parse('{"planId":[null,{"constructor":true,"prototype":1.5}],"response":"approve"}') as unknown;
    expect(fieldsOf(validateCommandPayload('plan_response', wire))).toEqual([
      'planId.1.constructor:whitelistValidation',
      'planId.1.prototype:whitelistValidation',
    ]);
  });

  it.each([
    ['a whole payload', () => nested(3000)],
    ['a string field holding objects', () => ({ botId: nested(3000) })],
    ['a string field holding arrays', () => ({ botId: 'b1', title: nested(20_000, 'x', 'array') })],
  ])('refuses %s nested thousands of levels deep with maxDepth', (_name, payload) => {
    const result = validateCommandPayload('new_session', payload());
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.violations).toHaveLength(1);
    expect(result.violations[0]).toMatchObject({ constraint: 'maxDepth', message: expect.stringContaining(`${MAX_JSON_DEPTH} levels`) });
  });

  it('refuses deep nesting inside free-form fields and DAG definitions', () => {
    const config = validateCommandPayload('start_execution', { dag: { nodes: [{ id: 'a', config: nested(5000) }], edges: [] } });
    expect(fieldsOf(config)).toEqual([`dag.nodes.0.config${'.a'.repeat(MAX_JSON_DEPTH - 4)}:maxDepth`]);
    expect(fieldsOf(validateCommandPayload('start_execution', { dag: { nodes: [nested(5000)], edges: [] } }))[0]).toMatch(/:maxDepth$/);
    expect(fieldsOf(validateCommandPayload('start_execution', { dag: nested(5000) }))[0]).toMatch(/:maxDepth$/);
  });

  it(`accepts ${MAX_JSON_DEPTH} levels of nesting and refuses one more`, () => {
    // payload › inputs › ...: the payload itself is level 1.
    expect(validateCommandPayload('start_execution', { dagId: 'd1', inputs: nested(MAX_JSON_DEPTH - 2, {}) }).ok).toBe(true);
    expect(fieldsOf(validateCommandPayload('start_execution', { dagId: 'd1', inputs: nested(MAX_JSON_DEPTH - 1, {}) }))).toEqual([
      `inputs${'.a'.repeat(MAX_JSON_DEPTH - 1)}:maxDepth`,
    ]);
  });

  it.each(['constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'])(
    'refuses an unknown top-level key %s like any unknown field',
    (key) => {
      const result = validateCommandPayload('chat', { botId: 'b1', content: 'x', [key]: 'x' });
      expect(result).toEqual({ ok: false, violations: [{ field: key, constraint: 'whitelistValidation', message: expect.stringContaining(key) }] });
    },
  );

  it('refuses an own __proto__ key from JSON.parse, at the top and nested', () => {
    const top = JSON.parse('{"botId":"b1","content":"x","__proto__":{"polluted":1}}') as unknown;
    expect(fieldsOf(validateCommandPayload('chat', top))).toEqual(['__proto__:whitelistValidation']);
    const nestedKey = JSON.parse('{"dag":{"nodes":[{"id":"a","config":{"__proto__":{"polluted":1}}}],"edges":[]}}') as unknown;
    expect(fieldsOf(validateCommandPayload('start_execution', nestedKey))).toEqual(['dag.nodes.0.config.__proto__:whitelistValidation']);
  });

  it.each([
    ['chat', { botId: { constructor: 1 }, content: 'x' }, ['botId.constructor:whitelistValidation']],
    ['chat', { botId: { constructor: { prototype: { polluted: 1 } } }, content: 'x' }, ['botId.constructor:whitelistValidation']],
    ['subscribe', { stream: { constructor: true, prototype: 1.5 } }, ['stream.constructor:whitelistValidation', 'stream.prototype:whitelistValidation']],
    ['subscribe', { stream: [{ constructor: true, prototype: 1.5 }] }, ['stream.0.constructor:whitelistValidation', 'stream.0.prototype:whitelistValidation']],
    ['start_execution', { dag: { nodes: [{ id: 'a', constructor: 1 }], edges: [] } }, ['dag.nodes.0.constructor:whitelistValidation']],
    ['start_execution', { dag: { constructor: 1, nodes: [], edges: [] } }, ['dag.constructor:whitelistValidation']],
    ['start_execution', { dag: { nodes: [{ id: 'a', toString: 'x' }], edges: [] } }, ['dag.nodes.0.toString:whitelistValidation']],
    ['start_execution', { dagId: 'x', inputs: { constructor: { prototype: { polluted: 1 } } } }, ['inputs.constructor:whitelistValidation']],
  ] as const)('refuses prototype-named keys nested inside %s payloads: %j', (type, payload, expected) => {
    expect(fieldsOf(validateCommandPayload(type, payload))).toEqual(expected);
  });

  it('refuses values JSON cannot carry', () => {
    expect(fieldsOf(validateCommandPayload('chat', { botId: 'b1', content: Buffer.from('x') }))).toEqual(['content:isJson']);
    expect(fieldsOf(validateCommandPayload('start_execution', { dagId: 'd', inputs: { at: new Date(0) } }))).toEqual(['inputs.at:isJson']);
    expect(fieldsOf(validateCommandPayload('chat', Buffer.from('{}')))).toEqual(['payload:isObject']);
  });

  it('lets free-form fields hold keys named like Object.prototype methods: there they are data', () => {
    expect(validateCommandPayload('start_execution', { dagId: 'd', inputs: { toString: 'x', valueOf: { hasOwnProperty: 1 } } }).ok).toBe(true);
  });

  it('bounds the number of structural violations it lists', () => {
    const payload = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, { constructor: i }]));
    const result = validateCommandPayload('chat', payload);
    expect(result.ok ? 0 : result.violations.length).toBe(MAX_SHAPE_VIOLATIONS);
  });
});

describe('validateAs', () => {
  it('refuses prototype-named keys in HTTP bodies too', () => {
    const body = { platform: 'slack', chatId: 'c1', content: 'hi', constructor: 1 };
    expect(fieldsOf(validateAs(InboundMessageDto, body))).toEqual(['constructor:whitelistValidation']);
  });

  it('turns a validator that throws into a violation instead of an exception', () => {
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    expect(validateAs(ThrowingDto, { field: 'x' }, 'payload')).toEqual({
      ok: false,
      violations: [{ field: 'payload', constraint: VALIDATOR_FAILED, message: 'payload could not be validated' }],
    });
    expect(warn).toHaveBeenCalledTimes(1);
    warn.mockRestore();
  });
});

class ThrowingDto {
  @ValidateBy({
    name: 'throws',
    validator: {
      validate: () => {
        throw new TypeError('a validator bug');
      },
    },
  })
  field!: string;
}
