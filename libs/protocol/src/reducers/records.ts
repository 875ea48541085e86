/**
 * Immutable helpers over the plain-object records that reducer states are made of. Keys are
 * client-chosen ids, and `__proto__` is a valid one: every lookup goes through `own()` so an
 * inherited property is never mistaken for an entry.
 */
export function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

export function withEntry<T>(record: Record<string, T>, key: string, value: T): Record<string, T> {
  // A computed key defines an own property even for `__proto__`; spreading copies own ones.
  return { ...record, [key]: value };
}

export function without<T>(record: Record<string, T>, key: string): Record<string, T> {
  if (!Object.prototype.hasOwnProperty.call(record, key)) return record;
  const rest = { ...record };
  delete rest[key];
  return rest;
}

export function filterValues<T>(record: Record<string, T>, keep: (value: T) => boolean): Record<string, T> {
  const entries = Object.entries(record);
  const kept = entries.filter(([, value]) => keep(value));
  if (kept.length === entries.length) return record;
  const result: Record<string, T> = {};
  for (const [key, value] of kept) Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
  return result;
}

/** Keeps the newest `max` items of an oldest-first list. */
export function capped<T>(items: T[], max: number): T[] {
  return items.length > max ? items.slice(items.length - max) : items;
}
