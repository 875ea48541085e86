import type { Logger } from 'pino';

/**
 * Runs `close` (Nest's `app.close()`, which calls every shutdown hook: the drain, closing
 * workers and Redis) on the first of these signals, then exits 0 — or 1 if closing failed.
 * A second signal while closing exits at once. Nest's own `enableShutdownHooks` re-raises
 * the signal instead, which reports a graceful stop as death by signal.
 * With `exitAfterMs`, a close still running by then (something ignored its own deadline)
 * is given up: the process exits 1 anyway.
 */
export function exitGracefullyOn(signals: NodeJS.Signals[], close: () => Promise<void>, logger: Logger, { exitAfterMs }: { exitAfterMs?: number } = {}): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.warn({ signal }, 'second signal while shutting down; exiting now');
      process.exit(1);
    }
    closing = true;
    logger.info({ signal }, 'shutting down');
    if (exitAfterMs !== undefined) {
      setTimeout(() => {
        logger.fatal({ signal, exitAfterMs }, `shutdown still running after ${exitAfterMs} ms; exiting now`);
        process.exit(1);
      }, exitAfterMs).unref();
    }
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  for (const signal of signals) process.on(signal, onSignal);
}
