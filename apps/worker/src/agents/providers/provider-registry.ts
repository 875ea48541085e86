import type { ModelProvider } from './model-provider';

/**
 * The model providers a worker can use, by name (`demo`, `openai`, a team's own). A bot
 * definition names its provider; docs/bots.md shows how to register one.
 */
export class ProviderRegistry {
  private readonly providers = new Map<string, ModelProvider>();

  register(provider: ModelProvider): this {
    if (this.providers.has(provider.name)) throw new Error(`a model provider named ${provider.name} is registered already`);
    this.providers.set(provider.name, provider);
    return this;
  }

  get(name: string): ModelProvider | undefined {
    return this.providers.get(name);
  }

  names(): string[] {
    return [...this.providers.keys()];
  }
}
