import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for an OpenAI-compatible server in tests (there is no outside network here):
 * real HTTP on a free loopback port, speaking streaming chat completions as OpenAI does —
 * `data: <chunk json>` events, `[DONE]` — and failing the ways such servers fail (status
 * codes, silence, stalls, resets, garbage). Each request takes the next scripted answer; the
 * last one answers every request after it.
 */
export class FakeOpenAiServer {
  readonly requests: ReceivedRequest[] = [];
  private answers: Answer[] = [];

  private constructor(
    private readonly server: Server,
    /** What `OPENAI_BASE_URL` would be: requests go to `${baseUrl}/chat/completions`. */
    readonly baseUrl: string,
  ) {}

  static async start(): Promise<FakeOpenAiServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const fake = new FakeOpenAiServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void fake.handle(req, res));
    return fake;
  }

  answer(...answers: Answer[]): void {
    this.answers = answers;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let left = (): void => undefined;
    const clientLeft = new Promise<void>((resolve) => (left = resolve));
    res.once('close', () => {
      if (!res.writableEnded) left();
    });
    const received: Buffer[] = [];
    for await (const piece of req) received.push(piece as Buffer);
    const text = Buffer.concat(received).toString('utf8');
    const request: ReceivedRequest = { path: req.url ?? '', headers: req.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, clientLeft };
    const answer = this.answers[Math.min(this.requests.length, this.answers.length - 1)];
    this.requests.push(request);
    if (answer) await answer(res, request);
    else res.writeHead(500).end('no answer scripted');
  }
}

export interface ReceivedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  /** Resolves when the client closed the connection before the answer ended. */
  clientLeft: Promise<void>;
}

export type Answer = (res: ServerResponse, req: ReceivedRequest) => void | Promise<void>;

export interface StreamOptions {
  /** Cut the stream into pieces of this many bytes (default: one piece per event), so lines, JSON and UTF-8 sequences straddle reads. */
  pieceBytes?: number;
  /** Pause between pieces, so each reaches the client as a read of its own (default 1 ms). */
  pauseMs?: number;
  /** After the chunks: `[DONE]` and the end (default), nothing ever again, or a reset connection. */
  then?: 'done' | 'stall' | 'reset';
}

/** Streams the chunks as server-sent events; a string goes out as the event's data as is (for garbage). */
export function stream(chunks: Array<object | string>, { pieceBytes, pauseMs = 1, then = 'done' }: StreamOptions = {}): Answer {
  return async (res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const events = chunks.map((chunk) => `data: ${typeof chunk === 'string' ? chunk : JSON.stringify(chunk)}\n\n`);
    if (then === 'done') events.push('data: [DONE]\n\n');
    const bytes = Buffer.from(events.join(''));
    const pieces = pieceBytes ? split(bytes, pieceBytes) : events.map((event) => Buffer.from(event));
    for (const piece of pieces) {
      if (res.destroyed) return;
      res.write(piece);
      await pause(pauseMs);
    }
    if (then === 'done') res.end();
    if (then === 'reset') {
      // A reset discards what the client has not read yet: let it read the chunks first.
      await pause(50);
      res.socket?.resetAndDestroy();
    }
  };
}

export function status(code: number, body: unknown, headers: Record<string, string> = {}): Answer {
  return (res) => void res.writeHead(code, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

/** Takes the request and never answers. */
export const silence: Answer = () => undefined;

/** Drops the connection without a word (a crashed server, a proxy's reset). */
export const reset: Answer = (res) => void res.socket?.resetAndDestroy();

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function split(bytes: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.subarray(i, i + size));
  return pieces;
}

/** Chunks as OpenAI streams them with `stream_options.include_usage` (`usage: null` until the last). */
export const chunk = {
  role: () => make({ role: 'assistant', content: '', refusal: null }),
  text: (content: string) => make({ content }),
  /** vLLM's, llama.cpp's and DeepSeek's field for a reasoning model's thinking. */
  reasoning: (text: string) => make({ reasoning_content: text }),
  toolCallStart: (index: number, id: string, name: string) => make({ tool_calls: [{ index, id, type: 'function', function: { name, arguments: '' } }] }),
  toolCallArguments: (index: number, text: string) => make({ tool_calls: [{ index, function: { arguments: text } }] }),
  finish: (reason: 'stop' | 'tool_calls' | 'length') => make({}, reason),
  usage: (promptTokens: number, completionTokens: number) => ({
    ...envelope(),
    choices: [],
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
  }),
};

/** A whole text answer: the role chunk, the pieces, `stop`, usage. */
export function textTurn(pieces: string[], usage: [number, number] = [10, pieces.length]): object[] {
  return [chunk.role(), ...pieces.map(chunk.text), chunk.finish('stop'), chunk.usage(...usage)];
}

function make(delta: object, finishReason: string | null = null): object {
  return { ...envelope(), choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }], usage: null };
}

function envelope(): object {
  return { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1_764_201_600, model: 'fake-model', system_fingerprint: 'fp_fake' };
}
