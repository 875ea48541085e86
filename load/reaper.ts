/**
 * The load driver's safety net (forked by load/system.ts): it is told the pids of the
 * processes the driver spawned without an IPC channel (redis-server, gateway pods) and
 * SIGKILLs the ones still registered when the driver goes away — however it goes, SIGKILL
 * included, since the kernel closes the IPC channel then too. Forked helpers need no such
 * help: they exit by themselves when their channel closes.
 */
const pids = new Set<number>();

process.on('message', (message: { watch?: number; forget?: number }) => {
  if (message.watch) pids.add(message.watch);
  if (message.forget) pids.delete(message.forget);
});

process.on('disconnect', () => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  process.exit(0);
});
