import { type DropMode, TcpProxy } from '@app/runtime/testing/tcp-proxy';
import { cpuNow, serveRequests } from '../bench/common';

/**
 * One TCP proxy in front of one pod, in its own process (forked by load/system.ts for the
 * network-drops drill): TcpProxy (libs/runtime/src/testing/tcp-proxy.ts) forwards the
 * client sockets routed through it and drops them on demand (TcpProxy.drop). A process holds
 * at most ~9k forwarded connections (two open files each, 20k per process), so a pod gets as
 * many proxies as its sockets need.
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
