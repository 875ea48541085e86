import { type DropMode, TcpProxy } from '@app/runtime/testing/tcp-proxy';
import { connectionJitter } from '../test/support/drills';
import { cpuNow, serveRequests } from '../bench/common';

/**
 * One TCP proxy in front of one pod, in its own process (forked by load/system.ts for the
 * network drills): TcpProxy (libs/runtime/src/testing/tcp-proxy.ts) forwards the client
 * sockets routed through it and breaks them on demand with the faults of
 * test/support/drills.ts. A process holds at most ~9k forwarded connections (two open files
 * each, 20k per process), so a pod gets as many proxies as its sockets need.
 */
async function main(): Promise<void> {
  const target = Number(process.env.PROXY_TARGET_PORT);
  if (!target) throw new Error('PROXY_TARGET_PORT is required');
  const sourceAddresses = (process.env.PROXY_SOURCE_ADDRESSES ?? '').split(',').filter(Boolean);
  const proxy = await TcpProxy.start({ target: { port: target }, sourceAddresses });

  serveRequests({
    stats: () => ({ ...proxy.stats, open: proxy.connections().length, cpu: cpuNow() }),
    /** The pod came back on another port (a baseline pod restarted): new connections go there. */
    retarget: (request) => proxy.retarget({ port: Number(request.port) }),
    /** Connection jitter (AnyCable's shape): each connection reset at a random age in [minMs, maxMs]. */
    jitter: (request) => connectionJitter([proxy], { minMs: Number(request.minMs), maxMs: Number(request.maxMs), durationMs: Number(request.durationMs) }),
    /** A network drop: every open connection reset, new ones refused / reset / held for `ms`. */
    drop: async (request) => {
      const open = proxy.connections().length;
      const turnedAway = proxy.stats.turnedAway;
      await proxy.drop(Number(request.ms), { mode: request.mode as DropMode });
      return { reset: open, turnedAway: proxy.stats.turnedAway - turnedAway };
    },
  });
  process.send?.({ ready: true, url: proxy.url });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
