import { type Job, WaitingError } from 'bullmq';

/**
 * The reason a job's BullMQ signal aborts with when the worker's shutdown deadline passes
 * (see WorkerShutdown): the job is to be handed back, not cancelled.
 */
export const HAND_BACK_REASON = 'the worker is shutting down';

/** Thrown out of an engine that stopped for a hand-back, so nothing ends the job as done. */
export class HandedBack extends Error {
  constructor() {
    super(HAND_BACK_REASON);
    this.name = 'HandedBack';
  }
}

/**
 * Puts an active job back in its queue, where another worker picks it up at once, and ends
 * this attempt without failing it (BullMQ does not count a `WaitingError` as a failure).
 */
export async function handBack(job: Job, token: string | undefined): Promise<never> {
  if (token === undefined) throw new Error(`job ${job.id} has no lock token; it cannot be handed back`);
  await job.moveToWait(token);
  throw new WaitingError();
}
