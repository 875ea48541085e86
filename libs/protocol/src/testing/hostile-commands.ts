import fc from 'fast-check';
import { COMMAND_TYPES, type CommandPayload, type CommandType } from '../commands';
import { checkJsonShape, RESERVED_KEYS } from '../json-shape';

/**
 * fast-check generators of command payloads for fuzzing the validation: valid payloads of
 * every command type, and hostile variants of them — random JSON, objects keyed by
 * prototype names, values nested far past MAX_JSON_DEPTH, such values planted anywhere
 * inside a valid payload. Used by the property test beside validate.ts and, through
 * `fc.sample` with a fixed seed, by the end-to-end fuzz (test/fuzz.e2e-spec.ts).
 */

/** Ids the contract accepts, including names that are dangerous as object keys downstream. */
const entityId = fc.oneof(
  fc.constantFrom('b1', 'fuzz', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'a.b-c_d'),
  fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/),
);
const stream = fc.tuple(fc.constantFrom('bot', 'dag'), entityId).map(([kind, id]) => `${kind}:${id}` as `bot:${string}`);
const text = (maxLength: number) => fc.string({ minLength: 1, maxLength });
/** JSON as the wire carries it (fast-check's keys include `__proto__`, `constructor`…). */
const json = fc.jsonValue({ maxDepth: 3 });
/** JSON the contract accepts in its free-form fields: no RESERVED_KEYS. */
const safeJson = json.filter((value) => checkJsonShape(value).length === 0);
const safeKey = fc.string().filter((key) => !RESERVED_KEYS.has(key));
const freeForm = fc.dictionary(safeKey, safeJson, { maxKeys: 3 });

const node = fc.record(
  { id: entityId, kind: fc.constantFrom('delay', 'task', 'llm', 'tool', 'human_gate', 'map', 'warp'), label: text(20), config: freeForm },
  { requiredKeys: ['id'] },
);
const edge = fc.record({ from: entityId, to: entityId });
const dag = fc.record({ nodes: fc.array(node, { minLength: 1, maxLength: 3 }), edges: fc.array(edge, { maxLength: 3 }) });
const options = { requiredKeys: [] as [] };

/** Valid payloads of every command type (the contract's DTOs accept each). */
export const VALID_PAYLOADS: { [T in CommandType]: fc.Arbitrary<CommandPayload<T>> } = {
  subscribe: fc.tuple(stream, fc.record({ sinceSeq: fc.nat(), epoch: text(64), lastId: text(128) }, options)).map(([s, rest]) => ({ stream: s, ...rest })),
  unsubscribe: fc.record({ stream }),
  presence: fc.record({ stream }),
  refresh_token: fc.record({ token: text(200) }),
  chat: fc
    .tuple(
      fc.record({ botId: entityId, content: text(40) }),
      fc.record(
        {
          sessionId: entityId,
          model: text(20),
          systemPrompt: fc.string(),
          onBusy: fc.constantFrom('reject' as const, 'enqueue' as const, 'interrupt' as const),
        },
        options,
      ),
    )
    .map(([required, rest]) => ({ ...required, ...rest })),
  cancel: fc.record({ runId: entityId }),
  approval: fc.record({ approvalId: entityId, approved: fc.boolean(), note: fc.string({ maxLength: 40 }) }, { requiredKeys: ['approvalId', 'approved'] }),
  plan_response: fc.oneof(
    fc.record(
      { planId: entityId, response: fc.constantFrom('approve' as const, 'reject' as const), feedback: fc.string({ maxLength: 40 }) },
      { requiredKeys: ['planId', 'response'] },
    ),
    fc.record({ planId: entityId, response: fc.constant('edit' as const), plan: text(40) }),
  ),
  new_session: fc.record({ botId: entityId, title: fc.string({ maxLength: 40 }) }, { requiredKeys: ['botId'] }),
  switch_session: fc.record({ sessionId: entityId }),
  start_execution: fc.oneof(
    fc.record({ dag, inputs: freeForm, budgetUsd: fc.double({ min: 0, max: 100, noNaN: true }) }, { requiredKeys: ['dag'] }),
    fc.record({ dagId: entityId, inputs: freeForm }, { requiredKeys: ['dagId'] }),
  ),
  human_decision: fc.record(
    { executionId: entityId, nodeId: entityId, decision: fc.constantFrom('approve' as const, 'reject' as const, 'modify' as const), feedback: fc.string() },
    { requiredKeys: ['executionId', 'nodeId', 'decision'] },
  ),
  pause_execution: fc.record({ executionId: entityId }),
  resume_execution: fc.record({ executionId: entityId }),
  cancel_execution: fc.record({ executionId: entityId }),
};

/** Keys that reach prototypes, shadow inherited methods, or would show a pollution. */
export const DANGEROUS_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  '__defineGetter__',
  'isPrototypeOf',
  'polluted',
];
const dangerousKey = fc.constantFrom(...DANGEROUS_KEYS);
const pollution = fc.constantFrom<unknown>({ polluted: true }, { prototype: { polluted: true } }, [{ polluted: true }]);

/** An object whose own keys are dangerous names (own `__proto__` included, as JSON.parse makes it). */
const prototypeKeyed: fc.Arbitrary<unknown> = fc
  .array(fc.tuple(dangerousKey, fc.oneof(json, pollution)), { minLength: 1, maxLength: 3 })
  .map((entries) => Object.fromEntries(entries));

/** `levels` objects or arrays inside each other around `leaf`, built without recursion. */
export function nestedValue(levels: number, leaf: unknown, as: 'object' | 'array'): unknown {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = as === 'array' ? [value] : { a: value };
  return value;
}

/**
 * Deep values: around the depth limit, and far past it. Kept under ~2,500 levels so that
 * JSON.stringify and socket.io-client can still send them; deeper frames are sent by hand.
 */
const deep: fc.Arbitrary<unknown> = fc
  .record({
    levels: fc.oneof(fc.integer({ min: 28, max: 40 }), fc.integer({ min: 40, max: 2500 })),
    as: fc.constantFrom('object' as const, 'array' as const),
    leaf: fc.oneof(json, prototypeKeyed),
  })
  .map(({ levels, as, leaf }) => nestedValue(levels, leaf, as));

/** A value to put where the contract expects something else. */
export const hostileValueArb: fc.Arbitrary<unknown> = fc.oneof(
  json,
  prototypeKeyed,
  fc.array(fc.oneof(fc.constant(null), prototypeKeyed, json), { minLength: 1, maxLength: 3 }),
  deep,
  fc.constantFrom<unknown>(null, true, 0, -1, 1.5, '', 'x'.repeat(300), [], {}),
);

/** Every object and array inside `value` (itself included), found without recursion. */
function containersOf(value: unknown): Array<Record<string, unknown> | unknown[]> {
  const found: Array<Record<string, unknown> | unknown[]> = [];
  const pending = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (typeof next !== 'object' || next === null) continue;
    const container = next as Record<string, unknown> | unknown[];
    found.push(container);
    pending.push(...Object.values(container));
  }
  return found;
}

/**
 * A hostile variant of a valid payload of `type`: a field replaced or added (known names,
 * dangerous names, random names), a hostile value planted in any nested object or array, the
 * whole payload replaced — and sometimes the valid payload itself.
 */
export function hostilePayloadArb(type: CommandType): fc.Arbitrary<unknown> {
  const valid = VALID_PAYLOADS[type] as fc.Arbitrary<unknown>;
  const fieldOf = (payload: unknown) => fc.oneof(fc.constantFrom(...Object.keys(payload as object), 'extra'), dangerousKey, fc.string({ maxLength: 10 }));
  return fc.oneof(
    { weight: 1, arbitrary: valid },
    {
      weight: 4,
      arbitrary: valid.chain((payload) => fc.tuple(fieldOf(payload), hostileValueArb).map(([key, value]) => ({ ...(payload as object), [key]: value }))),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(valid, fc.nat(), fc.oneof(dangerousKey, fc.string({ maxLength: 6 })), hostileValueArb).map(([payload, at, key, value]) => {
        const copy = structuredClone(payload);
        const containers = containersOf(copy);
        const target = containers[at % containers.length];
        if (Array.isArray(target)) target[at % (target.length + 1)] = value;
        else Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
        return copy;
      }),
    },
    { weight: 1, arbitrary: hostileValueArb },
  );
}

/** A command type and a (mostly hostile) payload for it; every type of the contract is drawn. */
export const hostileCommandArb: fc.Arbitrary<{ type: CommandType; payload: unknown }> = fc
  .constantFrom(...COMMAND_TYPES)
  .chain((type) => hostilePayloadArb(type).map((payload) => ({ type, payload })));
