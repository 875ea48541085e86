import { sleep } from '../../ops/abortable-sleep';
import { type ModelProvider, ModelProviderError, type ModelStreamPart, type ModelTurnRequest } from './model-provider';
import type { OpenAiProviderConfig } from './openai-config';
import { chatCompletionsBody, errorText, parseChunk, snippet, TurnAssembler } from './openai-turn';
import { SseDecoder } from './sse-decoder';

/** Longest `retry-after` obeyed; a server asking for more gets the usual backoff instead. */
const MAX_RETRY_AFTER_MS = 60_000;
const MAX_BACKOFF_MS = 10_000;
/** Enough of an error body for its message; a misbehaving server may send megabytes. */
const ERROR_BODY_BYTES = 4096;

/**
 * A model behind any OpenAI-compatible streaming chat-completions endpoint: OpenAI, vLLM,
 * Ollama (`/v1`), llama.cpp's `llama-server`.
 *
 * Node's fetch and a small SSE decoder rather than the `openai` package: the wire format is a
 * few dozen lines, and the package's own timeout and retry rules (a per-request timeout,
 * automatic retries) would have to be switched off and rebuilt here anyway — a turn may
 * stream for minutes and only silence is a fault; a retry must never repeat a turn that has
 * already streamed to dashboards. The servers' extras (`reasoning_content`) are outside its
 * types as well, and the worker gains no dependency.
 *
 * Failures: 4xx (bad key, unknown model, invalid request) and redirects are MODEL_REJECTED:
 * asking again cannot help. 408, 409, 429, 5xx, a refused or dropped connection and a stream
 * cut short are MODEL_UNAVAILABLE, retried with backoff while nothing of the turn has been
 * yielded. Silence longer than the timeout is MODEL_TIMEOUT (not retried: the timeout is all
 * the patience configured). A stream that is not SSE of JSON chunks is MODEL_BAD_RESPONSE;
 * an error reported inside the stream is MODEL_FAILED. An aborted `request.signal` closes
 * the connection at once and ends the turn quietly: the runtime knows why it aborted.
 */
export class OpenAiProvider implements ModelProvider {
  readonly name = 'openai';
  private readonly url: string;

  constructor(private readonly config: OpenAiProviderConfig) {
    this.url = `${config.baseUrl}/chat/completions`;
  }

  async *turn(request: ModelTurnRequest): AsyncGenerator<ModelStreamPart> {
    for (let attempt = 1; ; attempt++) {
      if (request.signal.aborted) return;
      let streamed = false;
      try {
        for await (const part of this.attempt(request)) {
          if (request.signal.aborted) return;
          streamed = true;
          yield part;
        }
        return;
      } catch (error) {
        if (request.signal.aborted) return;
        const failure = error instanceof ModelProviderError ? error : new ModelProviderError('MODEL_FAILED', String(error));
        // Once a part is out, dashboards have seen it: a second attempt would show the turn twice.
        if (streamed || !failure.retryable || attempt > this.config.maxRetries) {
          throw attempt === 1 ? failure : new ModelProviderError(failure.code, `${failure.message} (after ${attempt} attempts)`, failure.retryable);
        }
        await sleep(this.backoffMs(attempt, failure), request.signal).catch(() => undefined);
      }
    }
  }

  private async *attempt(request: ModelTurnRequest): AsyncGenerator<ModelStreamPart> {
    const exchange = new Exchange(request.signal, this.config.timeoutMs);
    const turn = new TurnAssembler(this.config.pricePer1k);
    try {
      const response = await exchange.wait(
        fetch(this.url, {
          method: 'POST',
          headers: this.headers(),
          body: JSON.stringify(chatCompletionsBody(request, this.config.model)),
          // A redirected POST may come back as a GET (301/302): report the new address instead.
          redirect: 'manual',
          signal: exchange.signal,
        }),
      );
      exchange.answered = true;
      const reader = (await this.eventStream(response, exchange)).getReader();
      const sse = new SseDecoder();
      stream: for (;;) {
        const { done, value } = await exchange.wait(reader.read());
        for (const data of done ? sse.end() : sse.push(value)) {
          if (data === '[DONE]') break stream;
          if (data.trim() !== '') yield* turn.accept(parseChunk(data));
        }
        if (done) {
          // A stream may end without `[DONE]` once the turn finished; before that it was cut off.
          if (!turn.finished) throw new ModelProviderError('MODEL_UNAVAILABLE', `${this.config.baseUrl} ended the stream before the turn finished`, true);
          break;
        }
      }
    } catch (error) {
      throw this.failure(error, exchange);
    } finally {
      exchange.close();
    }
    // Tool calls and usage only after the connection is released: the runtime may run tools
    // or wait for an approval before it asks for the next part.
    yield* turn.finish();
  }

  private headers(): Record<string, string> {
    return {
      'content-type': 'application/json',
      accept: 'text/event-stream',
      ...(this.config.apiKey ? { authorization: `Bearer ${this.config.apiKey}` } : {}),
    };
  }

  private async eventStream(response: Response, exchange: Exchange): Promise<ReadableStream<Uint8Array>> {
    const status = response.status;
    const where = `${this.config.baseUrl} answered ${status}`;
    if (status >= 300 && status < 400) {
      throw new ModelProviderError(
        'MODEL_REJECTED',
        `${where} (a redirect to ${response.headers.get('location') ?? 'nowhere'}): set the base URL to its target`,
      );
    }
    if (status >= 400) {
      const detail = errorDetail(await exchange.wait(readSome(response.body)));
      if (status === 408 || status === 409 || status === 429 || status >= 500) throw new BusyError(`${where}: ${detail}`, retryAfterMs(response.headers));
      throw new ModelProviderError('MODEL_REJECTED', `${where}: ${detail}`);
    }
    const type = response.headers.get('content-type') ?? '';
    if (!type.startsWith('text/event-stream') || !response.body) {
      const body = snippet(await exchange.wait(readSome(response.body)));
      throw new ModelProviderError('MODEL_BAD_RESPONSE', `${where} with ${type || 'no content type'} instead of an event stream: ${body}`);
    }
    return response.body;
  }

  private failure(error: unknown, exchange: Exchange): unknown {
    if (error instanceof ModelProviderError) return error;
    if (exchange.timedOut) {
      const silence = exchange.answered ? 'stalled mid-stream' : 'did not answer';
      return new ModelProviderError('MODEL_TIMEOUT', `${this.config.baseUrl} ${silence}: nothing for ${this.config.timeoutMs} ms`);
    }
    if (exchange.callerAborted) return error;
    // fetch's TypeError ('fetch failed', 'terminated') carries the socket's error as its cause.
    return new ModelProviderError('MODEL_UNAVAILABLE', `${this.config.baseUrl} could not be reached or dropped the connection: ${networkProblem(error)}`, true);
  }

  private backoffMs(attempt: number, failure: ModelProviderError): number {
    if (failure instanceof BusyError && failure.retryAfterMs !== undefined && failure.retryAfterMs <= MAX_RETRY_AFTER_MS) return failure.retryAfterMs;
    const exponential = Math.min(this.config.retryBackoffMs * 2 ** (attempt - 1), MAX_BACKOFF_MS);
    // Jitter: the runs one overload refused together do not all come back together.
    return exponential * (0.5 + Math.random() / 2);
  }
}

/** A 429 or 5xx; the server may say when to come back. */
class BusyError extends ModelProviderError {
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super('MODEL_UNAVAILABLE', message, true);
  }
}

/**
 * One HTTP exchange with an abort of its own, fired by the caller's signal, by silence, or by
 * the end of the turn: each closes the socket at once.
 */
class Exchange {
  private readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  answered = false;
  timedOut = false;
  private readonly onCallerAbort = () => this.controller.abort();

  constructor(
    private readonly caller: AbortSignal,
    private readonly timeoutMs: number,
  ) {
    caller.addEventListener('abort', this.onCallerAbort, { once: true });
  }

  get callerAborted(): boolean {
    return this.caller.aborted;
  }

  /**
   * Waits on the server for at most the timeout. The clock runs only here, never while a part
   * is with the runtime, which may take its time before it asks for the next one.
   */
  async wait<T>(work: Promise<T>): Promise<T> {
    const timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, this.timeoutMs);
    try {
      return await work;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.caller.removeEventListener('abort', this.onCallerAbort);
    this.controller.abort();
  }
}

async function readSome(body: ReadableStream<Uint8Array> | null): Promise<string> {
  if (!body) return '';
  const reader = body.getReader();
  const pieces: Uint8Array[] = [];
  let size = 0;
  while (size < ERROR_BODY_BYTES) {
    const { done, value } = await reader.read();
    if (done) break;
    pieces.push(value);
    size += value.length;
  }
  return Buffer.concat(pieces).subarray(0, ERROR_BODY_BYTES).toString('utf8');
}

/** The server's own words from an error body, JSON or not. */
function errorDetail(body: string): string {
  try {
    const json = JSON.parse(body) as { error?: unknown };
    return errorText(json.error ?? json);
  } catch {
    return snippet(body.trim()) || '(empty body)';
  }
}

/** `retry-after-ms` (OpenAI) or `retry-after` in seconds or as an HTTP date. */
function retryAfterMs(headers: Headers): number | undefined {
  const ms = Number(headers.get('retry-after-ms') ?? NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers.get('retry-after');
  if (value === null) return undefined;
  const seconds = Number(value);
  if (value.trim() !== '' && Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function networkProblem(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? (error.cause as NodeJS.ErrnoException) : undefined;
  return cause ? `${error.message} (${cause.code ?? cause.message})` : error.message;
}
