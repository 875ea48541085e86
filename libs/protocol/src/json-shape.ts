import type { FieldViolation } from './errors';

/**
 * How deep untrusted JSON may nest: at most this many levels of objects and arrays, the
 * top-level object being level 1. The deepest contract payload — a DAG node's free-form
 * `config` in `start_execution` (payload › dag › nodes › node › config, then the config's own
 * JSON, such as a map node's template) — stays far below it. The recursive code that reads a
 * payload after this check (class-transformer, class-validator, JSON.stringify, loggers) blows
 * the stack at a few thousand levels, and a 64 KiB frame can nest 30,000 deep.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * Keys refused anywhere in untrusted JSON, free-form fields included: the names through
 * which code that copies or merges an object reaches a prototype (`target[key] = value` with
 * `__proto__` replaces target's prototype; `x.constructor.prototype` is a class's). They are
 * also what trips class-transformer: it takes an own `constructor` key for the object's class
 * (and throws) and skips `__proto__`, so class-validator's whitelist never sees either.
 */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** A payload full of bad keys gets a bounded answer: at most this many structural violations. */
export const MAX_SHAPE_VIOLATIONS = 20;

/**
 * Checks that untrusted data is plain JSON that is safe to hand to recursive code: objects
 * (plain, or with a null prototype) and arrays nested at most MAX_JSON_DEPTH levels, no
 * RESERVED_KEYS, and only strings, numbers, booleans and null inside (`undefined` counts as
 * absent). Iterative, so no input can overflow the stack here. `path` names `value` in the
 * violations' fields (`''` for a payload's own fields, `payload` for `payload.x`).
 */
export function checkJsonShape(value: unknown, path = ''): FieldViolation[] {
  const violations: FieldViolation[] = [];
  let reportedDepth = false;
  const pending: Array<{ value: unknown; path: string; depth: number }> = [{ value, path, depth: 1 }];
  while (pending.length > 0 && violations.length < MAX_SHAPE_VIOLATIONS) {
    const next = pending.pop() as { value: unknown; path: string; depth: number };
    const kind = jsonKind(next.value);
    if (kind === 'primitive') continue;
    const field = next.path || '(root)';
    if (kind === 'other') {
      violations.push({ field, constraint: 'isJson', message: `${field} must be JSON: an object, array, string, number, boolean or null` });
      continue;
    }
    if (next.depth > MAX_JSON_DEPTH) {
      // One is enough: a deep value is usually deep all the way down.
      if (!reportedDepth) violations.push({ field, constraint: 'maxDepth', message: `${field} nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels` });
      reportedDepth = true;
      continue;
    }
    const container = next.value as Record<string, unknown>;
    const children: Array<{ value: unknown; path: string; depth: number }> = [];
    for (const key of Object.keys(container)) {
      const childPath = joinPath(next.path, key);
      if (kind === 'object' && RESERVED_KEYS.has(key)) {
        violations.push({ field: childPath, constraint: 'whitelistValidation', message: `property ${key} should not exist: the name is reserved` });
        continue;
      }
      children.push({ value: container[key], path: childPath, depth: next.depth + 1 });
    }
    // Reversed onto the stack, so violations come out in document order.
    for (let i = children.length - 1; i >= 0; i--) pending.push(children[i]);
  }
  return violations;
}

/**
 * The dotted path of `key` inside the field at `prefix` (`''` for the top level). An empty
 * key, legal in JSON, is written `""` so that every field is named by a non-empty path.
 */
export function joinPath(prefix: string, key: string | number): string {
  const segment = key === '' ? '""' : String(key);
  return prefix ? `${prefix}.${segment}` : segment;
}

/** A plain JSON object: not null, not an array, created by JSON.parse or as a literal. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return jsonKind(value) === 'object';
}

function jsonKind(value: unknown): 'primitive' | 'object' | 'array' | 'other' {
  if (value === null || value === undefined) return 'primitive';
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return 'primitive';
    case 'object': {
      const prototype: unknown = Object.getPrototypeOf(value);
      if (Array.isArray(value)) return prototype === Array.prototype ? 'array' : 'other';
      return prototype === Object.prototype || prototype === null ? 'object' : 'other';
    }
    default:
      return 'other';
  }
}
