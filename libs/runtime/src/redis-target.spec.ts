import { clusterUrl, parseRedisUrl, redact, redisUrlFromEnv } from './redis-target';

describe('Redis targets', () => {
  it('reads single-server URLs as they are', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6380/2')).toEqual({ kind: 'single', url: 'redis://127.0.0.1:6380/2' });
    expect(parseRedisUrl('rediss://user:pw@cache:6380')).toEqual({ kind: 'single', url: 'rediss://user:pw@cache:6380' });
  });

  it('reads cluster URLs: seed nodes, credentials and TLS', () => {
    expect(parseRedisUrl('redis+cluster://127.0.0.1:7000,127.0.0.1:7001')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '127.0.0.1', port: 7000 },
        { host: '127.0.0.1', port: 7001 },
      ],
      username: undefined,
      password: undefined,
      tls: false,
    });
    expect(parseRedisUrl('rediss+cluster://app:p%40ss@[::1]:7000/')).toMatchObject({
      nodes: [{ host: '::1', port: 7000 }],
      username: 'app',
      password: 'p@ss',
      tls: true,
    });
  });

  it('refuses what is not a Redis URL, saying why and hiding the password', () => {
    expect(() => parseRedisUrl('localhost:6379')).toThrow(/not a redis/);
    expect(() => parseRedisUrl('redis+cluster://a:1,b')).toThrow('cluster node "b" is not host:port');
    expect(() => parseRedisUrl('redis+cluster://a:99999')).toThrow('cluster node "a:99999" is not host:port');
    expect(() => parseRedisUrl('redis+cluster://')).toThrow(/malformed cluster URL/);
    expect(redact('redis://u:secret@h:1')).toBe('redis://u:***@h:1');
  });

  it('turns REDIS_CLUSTER_NODES into the cluster URL and back', () => {
    const url = redisUrlFromEnv({ REDIS_CLUSTER_NODES: ' 10.1.1.1:7000 ,10.1.1.2:7000' });
    expect(url).toBe('redis+cluster://10.1.1.1:7000,10.1.1.2:7000');
    expect(parseRedisUrl(url)).toMatchObject({ kind: 'cluster', nodes: [{ host: '10.1.1.1' }, { host: '10.1.1.2' }] });
    expect(clusterUrl([{ host: '::1', port: 1 }])).toBe('redis+cluster://[::1]:1');
    expect(redisUrlFromEnv({ REDIS_URL: 'redis://x:1' })).toBe('redis://x:1');
  });
});
