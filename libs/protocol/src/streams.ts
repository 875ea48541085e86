/**
 * Stream names (PROTOCOL.md §2): `bot:<botId>` and `dag:<executionId>`, ids matching
 * `[A-Za-z0-9_.-]{1,128}`. Every place that builds or reads a stream name goes through here.
 */
export type StreamKind = 'bot' | 'dag';
export type StreamName = `${StreamKind}:${string}`;

export const STREAM_KINDS: readonly StreamKind[] = ['bot', 'dag'];
export const ID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;
const STREAM_PATTERN = /^(bot|dag):([A-Za-z0-9_.-]{1,128})$/;

export interface ParsedStream {
  kind: StreamKind;
  id: string;
  name: StreamName;
}

/** Parses a stream name; `null` for anything that is not a valid one. */
export function parseStream(name: unknown): ParsedStream | null {
  if (typeof name !== 'string') return null;
  const match = STREAM_PATTERN.exec(name);
  if (!match) return null;
  return { kind: match[1] as StreamKind, id: match[2], name: name as StreamName };
}

export function isStreamName(name: unknown): name is StreamName {
  return parseStream(name) !== null;
}

export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id);
}

export function botStream(botId: string): StreamName {
  return `bot:${botId}`;
}

export function dagStream(executionId: string): StreamName {
  return `dag:${executionId}`;
}

/**
 * Token scopes (PROTOCOL.md §1): `bot:<id>`, `bot:*`, `dag:<id>`, `dag:*` or `admin`.
 * A scope item lets its holder read and command the streams it matches.
 */
/** Whether `scope` is one of the forms above (a token may carry others; they match nothing). */
export function isScope(scope: string): boolean {
  if (scope === 'admin') return true;
  const [kind, id, ...rest] = scope.split(':');
  return rest.length === 0 && STREAM_KINDS.includes(kind as StreamKind) && (id === '*' || isValidId(id));
}

export function scopeAllows(scopes: readonly string[], stream: StreamName): boolean {
  const parsed = parseStream(stream);
  if (!parsed) return false;
  return scopes.some((scope) => scope === 'admin' || scope === stream || scope === `${parsed.kind}:*`);
}
