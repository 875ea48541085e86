/**
 * Exactly-once publishing has one mechanism: **producers**, fenced per stream inside the
 * publish script (publish.lua.ts), as Kafka's and Durable Streams' idempotent producers. An
 * event stamped (producer id, epoch, seq) is published once whatever retries happen — a
 * resend after a reconnect, a retried job — and a producer's older epoch is fenced off once a
 * newer one published. Ids are namespaced here and nowhere else, so no caller's value (an
 * HTTP `Idempotency-Key`) can collide with the ids the system makes.
 */
export interface ProducerStamp {
  /** From {@link producerIds}. */
  id: string;
  /** A newer epoch fences off the older ones (e.g. a job's attempt). */
  epoch: number;
  /** Grows with each event of one epoch; at or below the newest published, a duplicate. */
  seq: number;
}

export const producerIds = {
  /** An event the system publishes at most once per stream, named by what it announces (`run-done.<runId>`). */
  once: (key: string) => `once/${key}`,
  /** The HTTP publish API's `Idempotency-Key`. */
  http: (key: string) => `http/${key}`,
  /** The inbound API's `Idempotency-Key` (or a random one): apart from the publish API's. */
  inbound: (key: string) => `inbound/${key}`,
  /** Every event of an agent run, one epoch per processing of its job. */
  run: (runId: string) => `run/${runId}`,
  /**
   * The events of one step of a DAG execution (`start`, `node.<nodeId>` with one epoch per
   * attempt, `control.<jobId>`): a step run again replays the same events in the same order.
   */
  dagStep: (step: string) => `dag/${step}`,
} as const;

/** A producer of one event: what an idempotency key is. */
export function singleEvent(id: string): ProducerStamp {
  return { id, epoch: 0, seq: 1 };
}

/** Stamps successive events of one producer epoch: seq 1, 2, 3, … */
export class Producer {
  private seq = 0;

  constructor(
    readonly id: string,
    readonly epoch: number,
  ) {}

  next(): ProducerStamp {
    return { id: this.id, epoch: this.epoch, seq: ++this.seq };
  }
}

/** An event refused because a newer epoch of its producer already published (a zombie's). */
export class ProducerFencedError extends Error {
  override readonly name = 'ProducerFencedError';
  constructor(
    readonly producerId: string,
    readonly epoch: number,
    readonly newerEpoch: number,
  ) {
    super(`producer ${producerId} epoch ${epoch} is fenced: epoch ${newerEpoch} has published`);
  }
}
