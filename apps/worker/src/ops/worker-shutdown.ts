import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { EventSink } from './event-sink';
import { HAND_BACK_REASON } from './hand-back';
import { QueueWorkers } from './queue-workers';
import { WorkerHttp } from './worker-http';

/** After the deadline, how long processors get to stop and put their jobs back. */
export const HAND_BACK_GRACE_MS = 5_000;

/**
 * SIGTERM: readiness goes red, every BullMQ worker stops taking jobs and the active ones get
 * `SHUTDOWN_TIMEOUT_MS` to finish. At the deadline their signals abort: each processor stops
 * between steps and moves its job back to the queue, where another worker takes it at once.
 *
 * BullMQ's `close(true)` cannot do this once `close()` is running (the second call returns the
 * first, which waits for the jobs), and a job left to its lock would wait out the stalled
 * check (30 s) before anyone took it.
 */
@Injectable()
export class WorkerShutdown implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Shutdown');

  constructor(
    private readonly workers: QueueWorkers,
    private readonly http: WorkerHttp,
    private readonly sink: EventSink,
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
  ) {}

  async beforeApplicationShutdown(signal?: string): Promise<void> {
    this.http.shuttingDown = true;
    const workers = this.workers.hosts().map((host) => host.worker);
    this.logger.log({ msg: 'shutting down', signal, workers: workers.length });
    const closed = Promise.all(workers.map((worker) => worker.close()));
    if (!(await settlesWithin(closed, this.config.shutdownTimeoutMs))) {
      this.logger.warn({ msg: 'shutdown deadline reached; handing active jobs back', timeoutMs: this.config.shutdownTimeoutMs });
      for (const worker of workers) worker.cancelAllJobs(HAND_BACK_REASON);
      if (!(await settlesWithin(closed, HAND_BACK_GRACE_MS))) {
        // Typically Redis is down: nothing can be handed back or closed cleanly. Exit (1) now;
        // the jobs come back to another worker when their locks lapse.
        throw new Error(`active jobs did not stop within ${HAND_BACK_GRACE_MS} ms of the shutdown deadline (is Redis down?)`);
      }
    }
    await this.sink.publisher.drain();
  }
}

function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  return Promise.race([work.then(() => true), timeout]).finally(() => clearTimeout(timer));
}
