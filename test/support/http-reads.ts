import type { Envelope, SseControl } from '@app/protocol';

/** One answer of `GET /v1/streams/:stream…` (PROTOCOL.md §12), its body parsed when it has one. */
export interface ReadAnswer {
  status: number;
  headers: Headers;
  body: unknown;
  /** Stream-Next-Offset. */
  next: string | null;
  upToDate: boolean;
}

export function streamUrl(baseUrl: string, stream: string, query: Record<string, string> = {}, suffix = ''): string {
  const url = new URL(`${baseUrl}/v1/streams/${encodeURIComponent(stream)}${suffix}`);
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  return url.toString();
}

/** A read as a plain HTTP client makes it; `token: null` sends no Authorization. */
export async function readHttp(
  url: string,
  { token, method = 'GET', headers = {}, signal }: { token: string | null; method?: string; headers?: Record<string, string>; signal?: AbortSignal },
): Promise<ReadAnswer> {
  // No keep-alive: a pooled socket would hold the test process open after the run.
  const all: Record<string, string> = { connection: 'close', ...headers };
  if (token !== null) all.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method, headers: all, signal });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text ? JSON.parse(text) : undefined,
    next: response.headers.get('stream-next-offset'),
    upToDate: response.headers.get('stream-up-to-date') === 'true',
  };
}

/**
 * An SSE read (`live=sse`) that records what arrives: the envelopes of `data` events in order,
 * every `control` event, and the raw event names (to check the framing: data, then control).
 */
export class SseTestReader {
  readonly envelopes: Envelope[] = [];
  readonly controls: SseControl[] = [];
  readonly kinds: string[] = [];
  /** SSE comments (keep-alives). */
  comments = 0;
  /** Settles when the server ends the response (or it breaks). */
  readonly ended: Promise<'ended' | 'broken'>;
  private readonly abort = new AbortController();

  private constructor(
    readonly status: number,
    readonly headers: Headers,
    body: ReadableStream<Uint8Array>,
  ) {
    this.ended = this.consume(body);
  }

  static async open(url: string, token: string): Promise<SseTestReader> {
    const abort = new AbortController();
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}`, connection: 'close' }, signal: abort.signal });
    if (!response.body || response.status !== 200) throw new Error(`SSE read answered ${response.status}: ${await response.text()}`);
    const reader = new SseTestReader(response.status, response.headers, response.body);
    reader.abort.signal.addEventListener('abort', () => abort.abort());
    return reader;
  }

  get lastControl(): SseControl | undefined {
    return this.controls.at(-1);
  }

  close(): void {
    this.abort.abort();
  }

  private async consume(body: ReadableStream<Uint8Array>): Promise<'ended' | 'broken'> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.onEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      return 'ended';
    } catch {
      return 'broken';
    }
  }

  private onEvent(block: string): void {
    let kind = '';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) kind = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (!kind) {
      if (block.startsWith(':')) this.comments++;
      return;
    }
    this.kinds.push(kind);
    const value: unknown = JSON.parse(data.join('\n'));
    if (kind === 'data') this.envelopes.push(...(value as Envelope[]));
    if (kind === 'control') this.controls.push(value as SseControl);
  }
}

/** A Prometheus sample of a gateway's /metrics, 0 when absent. */
export async function metric(baseUrl: string, sample: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`, { headers: { connection: 'close' } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}
