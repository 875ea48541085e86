import { ConfigError } from '@app/runtime';
import type { ModelProvider } from './model-provider';
import { loadOpenAiConfig } from './openai-config';
import { OpenAiProvider } from './openai-provider';

export interface ModelProviderSources {
  /** Where the `openai` provider's variables are read (default: `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Builds the built-in `demo` provider, which lives with the runtime. */
  demo?: () => ModelProvider;
}

/**
 * The model provider a bot names in configuration. A provider's environment is read and
 * validated only when it is asked for, so a deployment on the demo model sets no `OPENAI_*`
 * variable; a bad one throws {@link ConfigError} naming it. Providers hold no per-turn state:
 * build each once and share it between runs.
 */
export function createModelProvider(name: string, sources: ModelProviderSources = {}): ModelProvider {
  if (name === 'openai') return new OpenAiProvider(loadOpenAiConfig(sources.env));
  if (name === 'demo' && sources.demo) return sources.demo();
  const known = sources.demo ? 'demo, openai' : 'openai';
  throw new ConfigError([`model provider "${name}" is unknown (known: ${known})`]);
}
