import { ConfigError } from '@app/runtime';
import { loadGatewayConfig } from './gateway-config';

const base = { REDIS_URL: 'redis://127.0.0.1:6390', JWT_SECRET: 'a-secret-of-16-chars+' };

describe('loadGatewayConfig', () => {
  it('applies defaults and converts numbers and lists', () => {
    const config = loadGatewayConfig({ ...base, PORT: '4001', API_KEYS: 'key-aaaaaaaaaaaaaaaa, key-bbbbbbbbbbbbbbbb', TRANSPORTS: 'websocket' });
    expect(config.port).toBe(4001);
    expect(config.redisUrl).toBe(base.REDIS_URL);
    expect(config.jwt.secret).toBe(base.JWT_SECRET);
    expect(config.apiKeys).toEqual(['key-aaaaaaaaaaaaaaaa', 'key-bbbbbbbbbbbbbbbb']);
    expect(config.transports).toEqual(['websocket']);
    expect(config.limits).toEqual({ maxPayloadBytes: 262144, commandsPerSecond: 20, commandTimeoutMs: 10000, maxSubscriptions: 200 });
    expect(config.serverId).toMatch(/^[A-Za-z0-9_.-]+$/);
    expect(config.longPollTimeoutMs).toBe(25_000);
  });

  it('names every bad variable at once', () => {
    let error: unknown;
    try {
      loadGatewayConfig({ REDIS_URL: 'localhost', PORT: 'eighty', COMMANDS_PER_SECOND: '0', TRANSPORTS: 'carrier-pigeon', LONG_POLL_TIMEOUT_MS: '5' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    for (const name of ['REDIS_URL', 'PORT', 'COMMANDS_PER_SECOND', 'TRANSPORTS', 'JWT_SECRET', 'LONG_POLL_TIMEOUT_MS']) expect(message).toContain(name);
    expect(message).toContain('got "eighty"');
  });

  it('does not need JWT_SECRET when a public key file is configured', () => {
    expect(loadGatewayConfig({ REDIS_URL: base.REDIS_URL, JWT_PUBLIC_KEY_FILE: '/keys/jwt.pem' }).jwt.publicKeyFile).toBe('/keys/jwt.pem');
  });

  it('takes a Redis Cluster as REDIS_CLUSTER_NODES or as a redis+cluster:// URL', () => {
    const fromNodes = loadGatewayConfig({ JWT_SECRET: base.JWT_SECRET, REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7001' });
    expect(fromNodes.redisUrl).toBe('redis+cluster://10.0.0.1:7000,10.0.0.2:7001');
    const fromUrl = loadGatewayConfig({ JWT_SECRET: base.JWT_SECRET, REDIS_URL: 'redis+cluster://:pw@redis-0:6379,redis-1:6379' });
    expect(fromUrl.redisUrl).toBe('redis+cluster://:pw@redis-0:6379,redis-1:6379');
  });

  it('refuses no Redis, two Redises and a malformed cluster, naming the variable', () => {
    const problem = (env: Record<string, string>): string => {
      try {
        loadGatewayConfig({ JWT_SECRET: base.JWT_SECRET, ...env });
      } catch (error) {
        return (error as ConfigError).message;
      }
      return 'accepted';
    };
    expect(problem({})).toContain('REDIS_URL');
    expect(problem({ REDIS_URL: base.REDIS_URL, REDIS_CLUSTER_NODES: 'a:1' })).toContain('REDIS_CLUSTER_NODES and REDIS_URL');
    expect(problem({ REDIS_CLUSTER_NODES: 'a:1,b' })).toContain('REDIS_CLUSTER_NODES must be host:port');
    expect(problem({ REDIS_URL: 'redis+cluster://a:1,b' })).toMatch(/REDIS_URL.*cluster node "b" is not host:port/);
  });
});
