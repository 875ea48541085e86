import { createServer } from 'node:net';

/** Where a process was told to listen, and the variables that told it. */
export interface ListenTarget {
  port: number;
  host: string;
  portVariable: string;
  hostVariable?: string;
}

/**
 * One clear sentence for an error from binding a listening socket (a port in use, a port that
 * needs privileges, a host that is not this machine's), naming the variable to change; `null`
 * for any other error.
 */
export function describeListenError(error: unknown, { port, host, portVariable, hostVariable = 'HOST' }: ListenTarget): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  const where = `port ${port} on ${host}`;
  switch (code) {
    case 'EADDRINUSE':
      return `${portVariable}=${port}: ${where} is already in use by another process; stop it or set ${portVariable} to a free port`;
    case 'EACCES':
      return `${portVariable}=${port}: not allowed to listen on ${where} (ports below 1024 need privileges); set ${portVariable} to a port above 1023`;
    case 'EADDRNOTAVAIL':
      return `${hostVariable}=${host}: no such address on this machine; set ${hostVariable} to one of its addresses (or 0.0.0.0)`;
    default:
      return null;
  }
}

/**
 * Binds `port` on `host` and lets it go: rejects with the error a listen there would get now.
 * For a process whose framework logs a failed listen in its own words before rethrowing it.
 */
export function checkListen(port: number, host: string): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}
