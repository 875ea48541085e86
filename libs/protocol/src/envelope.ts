import type { StreamName } from './streams';
import type { ProtocolVersion } from './version';

/**
 * One stream event on the wire (PROTOCOL.md §2), sent as the Socket.IO event `event`.
 * `seq` is gapless per stream and epoch; `id` is unique per event.
 */
export interface Envelope<TType extends string = string, TPayload = unknown> {
  v: ProtocolVersion;
  stream: StreamName;
  seq: number;
  epoch: string;
  id: string;
  type: TType;
  /** Publish time, ms since the Unix epoch (taken from the Redis clock, so publishers agree). */
  ts: number;
  payload: TPayload;
}

/** What a publisher hands to the backplane; the rest of the envelope is assigned there. */
export interface EventDraft<TType extends string = string, TPayload = unknown> {
  type: TType;
  payload: TPayload;
}

const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;

/** Event type names are lower snake case; new types are additions to the contract. */
export function isEventTypeName(type: unknown): type is string {
  return typeof type === 'string' && EVENT_TYPE_PATTERN.test(type);
}

/**
 * Structural check of an envelope decoded from an untrusted source (the backplane, a
 * history read). It checks the frame, not the payload's schema: unknown event types are
 * additions the reducers ignore.
 */
export function isEnvelope(value: unknown): value is Envelope {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Record<string, unknown>;
  return (
    e.v === 1 &&
    typeof e.stream === 'string' &&
    Number.isSafeInteger(e.seq) &&
    (e.seq as number) >= 1 &&
    typeof e.epoch === 'string' &&
    e.epoch.length > 0 &&
    typeof e.id === 'string' &&
    e.id.length > 0 &&
    isEventTypeName(e.type) &&
    Number.isFinite(e.ts) &&
    typeof e.payload === 'object' &&
    e.payload !== null &&
    !Array.isArray(e.payload)
  );
}
