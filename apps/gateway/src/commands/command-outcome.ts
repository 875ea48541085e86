/**
 * What a command handler returns: the ack's result, and optionally work that must follow
 * the ack immediately, in the same tick (a subscribe's replay and room join).
 */
export interface CommandOutcome<TResult = unknown> {
  result: TResult;
  afterAck?: () => void;
  /** Undoes the effect when the ack already went out as an error (the command timed out). */
  abandon?: () => void;
}
