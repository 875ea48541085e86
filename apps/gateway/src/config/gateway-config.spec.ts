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
    expect(config.limits).toEqual({ maxPayloadBytes: 65536, commandsPerSecond: 20, commandTimeoutMs: 10000, maxSubscriptions: 200 });
    expect(config.serverId).toMatch(/^[A-Za-z0-9_.-]+$/);
  });

  it('names every bad variable at once', () => {
    let error: unknown;
    try {
      loadGatewayConfig({ REDIS_URL: 'localhost', PORT: 'eighty', COMMANDS_PER_SECOND: '0', TRANSPORTS: 'carrier-pigeon' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    for (const name of ['REDIS_URL', 'PORT', 'COMMANDS_PER_SECOND', 'TRANSPORTS', 'JWT_SECRET']) expect(message).toContain(name);
    expect(message).toContain('got "eighty"');
  });

  it('does not need JWT_SECRET when a public key file is configured', () => {
    expect(loadGatewayConfig({ REDIS_URL: base.REDIS_URL, JWT_PUBLIC_KEY_FILE: '/keys/jwt.pem' }).jwt.publicKeyFile).toBe('/keys/jwt.pem');
  });
});
