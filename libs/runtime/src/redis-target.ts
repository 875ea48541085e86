/**
 * Where a process's Redis is: one server (`redis://`, `rediss://`) or a Redis Cluster
 * (`redis+cluster://[user:password@]host:port,host:port,…`, `rediss+cluster://` for TLS).
 * Every process carries its Redis as one such URL string, so a cluster travels through
 * configuration, child-process environments and tests exactly as a single server does;
 * `REDIS_CLUSTER_NODES=host:port,…` is read into the cluster form by {@link redisUrlFromEnv}.
 */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: Array<{ host: string; port: number }>; username?: string; password?: string; tls: boolean };

const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)\/?$/;
const NODE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

export function isClusterUrl(url: string): boolean {
  return /^rediss?\+cluster:\/\//.test(url);
}

/** Parses a Redis URL of either form; throws an Error whose message says what is wrong. */
export function parseRedisUrl(url: string): RedisTarget {
  if (!isClusterUrl(url)) {
    if (!/^rediss?:\/\/.+/.test(url)) throw new Error(`not a redis://, rediss:// or redis+cluster:// URL: ${redact(url)}`);
    return { kind: 'single', url };
  }
  const match = CLUSTER_URL.exec(url);
  if (!match) throw new Error(`malformed cluster URL (expected redis+cluster://host:port,host:port): ${redact(url)}`);
  const [, scheme, username, password, hosts] = match;
  return {
    kind: 'cluster',
    nodes: parseNodeList(hosts),
    username: username ? decodeURIComponent(username) : undefined,
    password: password ? decodeURIComponent(password) : undefined,
    tls: scheme === 'rediss',
  };
}

/** `host:port,host:port` → nodes; throws naming the entry that is not `host:port`. */
export function parseNodeList(list: string): Array<{ host: string; port: number }> {
  const entries = list
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new Error('no cluster nodes given');
  return entries.map((entry) => {
    const node = NODE.exec(entry);
    const port = node ? Number(node[2]) : 0;
    if (!node || port < 1 || port > 65535) throw new Error(`cluster node "${entry}" is not host:port`);
    return { host: node[1].replace(/^\[|\]$/g, ''), port };
  });
}

/** The cluster URL for these seed nodes (what `REDIS_CLUSTER_NODES` stands for). */
export function clusterUrl(nodes: Array<{ host: string; port: number }>): string {
  return `redis+cluster://${nodes.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(',')}`;
}

/**
 * The one Redis URL of a process's environment: `REDIS_URL`, or the cluster named by
 * `REDIS_CLUSTER_NODES`. The env DTOs have already refused both or neither being set.
 */
export function redisUrlFromEnv(env: { REDIS_URL?: string; REDIS_CLUSTER_NODES?: string }): string {
  if (env.REDIS_CLUSTER_NODES) return clusterUrl(parseNodeList(env.REDIS_CLUSTER_NODES));
  return env.REDIS_URL ?? '';
}

/** The URL with its password masked, for messages and logs. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
