import { ConfigError } from '@app/runtime';
import { loadWorkerConfig } from './worker-config';

describe('loadWorkerConfig', () => {
  it('reads the shared backplane variables and its own', () => {
    const config = loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1', AGENT_RUN_CONCURRENCY: '7', HISTORY_MAX_EVENTS: '99' });
    expect(config).toMatchObject({ redisUrl: 'redis://127.0.0.1:1', agentRunConcurrency: 7, retention: { maxEvents: 99 } });
  });

  it('coalesces message deltas for 50 ms unless told otherwise; 0 turns it off, a negative or fractional window is refused', () => {
    expect(loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1' }).messageCoalesceMs).toBe(50);
    expect(loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1', MESSAGE_COALESCE_MS: '0' }).messageCoalesceMs).toBe(0);
    for (const bad of ['-1', '2.5', 'soon', '5000']) {
      expect(() => loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1', MESSAGE_COALESCE_MS: bad })).toThrow(/MESSAGE_COALESCE_MS/);
    }
  });

  it('locks jobs for 30 s unless told otherwise; below 1 s is refused', () => {
    expect(loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1' }).jobLockMs).toBe(30_000);
    expect(loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1', JOB_LOCK_MS: '2000' }).jobLockMs).toBe(2_000);
    for (const bad of ['500', '1.5', 'long']) expect(() => loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1', JOB_LOCK_MS: bad })).toThrow(/JOB_LOCK_MS/);
  });

  it('reads the per-model price table from AGENT_PRICES and refuses a bad one, naming the variable', () => {
    expect(loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1' }).agents.prices).toEqual({});
    const prices = '{"gpt-4o-mini":{"prompt":0.00015,"completion":0.0006}}';
    expect(loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1', AGENT_PRICES: prices }).agents.prices).toEqual({
      'gpt-4o-mini': { prompt: 0.00015, completion: 0.0006 },
    });
    expect(() => loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1', AGENT_PRICES: '{"m":{"prompt":1}}' })).toThrow(/AGENT_PRICES: model "m" must be/);
    expect(() => loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1', AGENT_PRICES: 'cheap' })).toThrow(/AGENT_PRICES: must be JSON/);
  });

  it('names the bad variables', () => {
    expect(() => loadWorkerConfig({ AGENT_RUN_CONCURRENCY: 'many' })).toThrow(ConfigError);
    expect(() => loadWorkerConfig({ AGENT_RUN_CONCURRENCY: 'many' })).toThrow(/REDIS_URL[\s\S]*AGENT_RUN_CONCURRENCY|AGENT_RUN_CONCURRENCY[\s\S]*REDIS_URL/);
  });

  it('builds the default bot from the AGENT_* variables', () => {
    const config = loadWorkerConfig({
      REDIS_URL: 'redis://127.0.0.1:1',
      AGENT_TOOLS: 'calculator, clock',
      AGENT_APPROVAL_THRESHOLD: 'medium',
      AGENT_ON_BUSY: 'reject',
      HTTP_GET_ALLOWED_HOSTS: 'example.com,api.example.com',
    });
    expect(config.agents).toMatchObject({
      defaultBot: { botId: '*', provider: 'demo', model: 'demo', tools: ['calculator', 'clock'], approvalThreshold: 'medium', onBusy: 'reject', maxTurns: 8 },
      approvalTimeoutMs: 300_000,
      approvalOnExpiry: 'reject',
      httpGet: { allowedHosts: ['example.com', 'api.example.com'], timeoutMs: 5_000 },
    });
    expect(loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1' }).agents.httpGet.allowedHosts).toEqual([]);
    expect(() => loadWorkerConfig({ REDIS_URL: 'redis://127.0.0.1:1', AGENT_APPROVAL_THRESHOLD: 'scary', AGENT_ON_BUSY: 'maybe' })).toThrow(
      /AGENT_APPROVAL_THRESHOLD[\s\S]*AGENT_ON_BUSY|AGENT_ON_BUSY[\s\S]*AGENT_APPROVAL_THRESHOLD/,
    );
  });
});
