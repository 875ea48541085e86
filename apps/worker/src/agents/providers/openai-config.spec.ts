import { ConfigError } from '@app/runtime';
import { createModelProvider } from './create-model-provider';
import { loadOpenAiConfig } from './openai-config';

describe('loadOpenAiConfig', () => {
  it("reads a local server's settings, with defaults for the rest", () => {
    expect(loadOpenAiConfig({ OPENAI_BASE_URL: 'http://ollama:11434/v1/', OPENAI_MODEL: 'llama3.1' })).toEqual({
      baseUrl: 'http://ollama:11434/v1',
      apiKey: undefined,
      model: 'llama3.1',
      timeoutMs: 60_000,
      maxRetries: 2,
      retryBackoffMs: 500,
      pricePer1k: { prompt: 0, completion: 0 },
    });
  });

  it('reads every variable', () => {
    const config = loadOpenAiConfig({
      OPENAI_API_KEY: 'sk-live',
      OPENAI_MODEL: 'gpt-4o-mini',
      OPENAI_TIMEOUT_MS: '15000',
      OPENAI_MAX_RETRIES: '0',
      OPENAI_RETRY_BACKOFF_MS: '250',
      OPENAI_PRICE_PROMPT_PER_1K: '0.00015',
      OPENAI_PRICE_COMPLETION_PER_1K: '0.0006',
    });
    expect(config).toEqual({
      baseUrl: 'https://api.openai.com/v1',
      apiKey: 'sk-live',
      model: 'gpt-4o-mini',
      timeoutMs: 15_000,
      maxRetries: 0,
      retryBackoffMs: 250,
      pricePer1k: { prompt: 0.00015, completion: 0.0006 },
    });
  });

  it('names each bad variable', () => {
    const problems = configProblems({
      OPENAI_BASE_URL: 'ftp://models.internal/v1',
      OPENAI_TIMEOUT_MS: 'soon',
      OPENAI_MAX_RETRIES: '-1',
      OPENAI_PRICE_COMPLETION_PER_1K: 'cheap',
    });
    for (const name of ['OPENAI_BASE_URL', 'OPENAI_MODEL', 'OPENAI_TIMEOUT_MS', 'OPENAI_MAX_RETRIES', 'OPENAI_PRICE_COMPLETION_PER_1K']) {
      expect(problems.filter((problem) => problem.startsWith(`${name}: `))).not.toEqual([]);
    }
  });

  it('wants a key for api.openai.com only', () => {
    expect(configProblems({ OPENAI_MODEL: 'gpt-4o-mini' })).toEqual([expect.stringMatching(/^OPENAI_API_KEY: OPENAI_API_KEY is required for api.openai.com/)]);
    expect(loadOpenAiConfig({ OPENAI_BASE_URL: 'http://127.0.0.1:8080/v1', OPENAI_MODEL: 'any' }).apiKey).toBeUndefined();
  });
});

describe('createModelProvider', () => {
  it('builds the openai provider from its variables, and the demo one from what the runtime passes', () => {
    expect(createModelProvider('openai', { env: { OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1', OPENAI_MODEL: 'qwen3' } }).name).toBe('openai');
    const demo = {
      name: 'demo',
      async *turn() {
        yield { kind: 'text' as const, text: 'demo' };
      },
    };
    expect(createModelProvider('demo', { demo: () => demo })).toBe(demo);
  });

  it('refuses an unknown provider and a bad configuration with a ConfigError', () => {
    expect(() => createModelProvider('anthropic')).toThrow(/model provider "anthropic" is unknown \(known: openai\)/);
    expect(() => createModelProvider('openai', { env: {} })).toThrow(ConfigError);
  });
});

function configProblems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadOpenAiConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}
