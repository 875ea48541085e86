import { Transform } from 'class-transformer';
import {
  IsInt,
  IsNumber,
  IsString,
  Max,
  Min,
  MinLength,
  Validate,
  type ValidationArguments,
  ValidatorConstraint,
  type ValidatorConstraintInterface,
} from 'class-validator';
import { loadConfig, toInt } from '@app/runtime';

@ValidatorConstraint({ name: 'httpUrl' })
class HttpUrl implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return typeof value === 'string' && parseHttpUrl(value) !== null;
  }

  defaultMessage(args: ValidationArguments): string {
    return `${args.property} must be an http:// or https:// URL ending at the API's version path, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1`;
  }
}

/** OpenAI itself refuses every request without a key: say so at start, not at the first turn. */
@ValidatorConstraint({ name: 'keyForOpenAi' })
class KeyForOpenAi implements ValidatorConstraintInterface {
  validate(value: unknown, args: ValidationArguments): boolean {
    const host = parseHttpUrl((args.object as OpenAiEnv).OPENAI_BASE_URL)?.hostname;
    return host !== 'api.openai.com' || (typeof value === 'string' && value.length > 0);
  }

  defaultMessage(): string {
    return 'OPENAI_API_KEY is required for api.openai.com (local servers such as Ollama, vLLM or llama.cpp may do without)';
  }
}

function parseHttpUrl(value: string): URL | null {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch {
    return null;
  }
}

/** Decimal numbers (prices): environment values are always strings. */
const toNumber = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)) ? Number(value) : value;

/**
 * The `openai` model provider's environment: any server that speaks OpenAI's streaming chat
 * completions (OpenAI, vLLM, Ollama, llama.cpp's server). Read only when a bot uses the
 * provider, so a deployment on the demo model sets none of these.
 */
export class OpenAiEnv {
  @Validate(HttpUrl)
  OPENAI_BASE_URL = 'https://api.openai.com/v1';

  /** Sent as `Authorization: Bearer …` when set. */
  @Validate(KeyForOpenAi)
  OPENAI_API_KEY?: string = undefined;

  /** The model asked for when a turn's request names none. */
  @IsString()
  @MinLength(1, { message: 'OPENAI_MODEL must name the model to ask for, e.g. gpt-4o-mini or llama3.1' })
  OPENAI_MODEL = '';

  /**
   * The longest silence from the server: before its answer starts and between two pieces of
   * the stream. Not a limit on the whole turn, which may stream for minutes.
   */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(3_600_000)
  OPENAI_TIMEOUT_MS = 60_000;

  /** Retries of a turn refused as busy (429, 5xx) or cut off, before anything of it streamed. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(10)
  OPENAI_MAX_RETRIES = 2;

  /** The first retry's pause; each next one doubles it (a server's `retry-after` wins). */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(60_000)
  OPENAI_RETRY_BACKOFF_MS = 500;

  /** USD per 1,000 prompt tokens, for the turn's `usage.costUsd` (0: not priced). */
  @Transform(toNumber)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  OPENAI_PRICE_PROMPT_PER_1K = 0;

  /** USD per 1,000 completion tokens. */
  @Transform(toNumber)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  OPENAI_PRICE_COMPLETION_PER_1K = 0;
}

export interface OpenAiProviderConfig {
  /** Without a trailing slash; requests go to `${baseUrl}/chat/completions`. */
  baseUrl: string;
  apiKey?: string;
  model: string;
  timeoutMs: number;
  maxRetries: number;
  retryBackoffMs: number;
  pricePer1k: { prompt: number; completion: number };
}

export function loadOpenAiConfig(env: NodeJS.ProcessEnv = process.env): OpenAiProviderConfig {
  const e = loadConfig(OpenAiEnv, env);
  return {
    baseUrl: e.OPENAI_BASE_URL.replace(/\/+$/, ''),
    apiKey: e.OPENAI_API_KEY,
    model: e.OPENAI_MODEL,
    timeoutMs: e.OPENAI_TIMEOUT_MS,
    maxRetries: e.OPENAI_MAX_RETRIES,
    retryBackoffMs: e.OPENAI_RETRY_BACKOFF_MS,
    pricePer1k: { prompt: e.OPENAI_PRICE_PROMPT_PER_1K, completion: e.OPENAI_PRICE_COMPLETION_PER_1K },
  };
}
