import { stringArg, type Tool, ToolError } from './tool';

export interface HttpGetOptions {
  /** Host names the tool may reach (exact, case-insensitive); empty refuses every URL. */
  allowedHosts: readonly string[];
  timeoutMs: number;
  /** Bytes of the body kept in the result. */
  maxBytes?: number;
}

/**
 * `http_get {url}` (risk medium): a GET to a host on the deployment's allow-list
 * (`HTTP_GET_ALLOWED_HOSTS`; empty by default, so the tool refuses everything until an
 * operator opens it). Redirects are not followed — one could leave the allow-list — and the
 * body is cut at `maxBytes`.
 */
export function httpGetTool({ allowedHosts, timeoutMs, maxBytes = 16_384 }: HttpGetOptions): Tool {
  const allowed = new Set(allowedHosts.map((h) => h.toLowerCase()));
  return {
    spec: {
      name: 'http_get',
      description: 'Fetches a URL with HTTP GET (allowed hosts only) and returns the status and the start of the body.',
      parameters: { type: 'object', properties: { url: { type: 'string' } }, required: ['url'], additionalProperties: false },
    },
    risk: 'medium',
    run: async (args, { signal }) => {
      const raw = stringArg(args, 'url');
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new ToolError(`not a URL: ${raw}`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ToolError(`only http and https URLs are allowed, not ${url.protocol}`);
      if (!allowed.has(url.hostname.toLowerCase())) throw new ToolError(`host ${url.hostname} is not on the allow-list (HTTP_GET_ALLOWED_HOSTS)`);
      let response: Response;
      try {
        response = await fetch(url, { redirect: 'manual', signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) });
      } catch (error) {
        if (signal.aborted) throw error;
        throw new ToolError(`GET ${url.href} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
      return { status: response.status, body: await readCapped(response, maxBytes) };
    },
  };
}

async function readCapped(response: Response, maxBytes: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < maxBytes) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
  }
  await reader.cancel().catch(() => undefined);
  return Buffer.concat(chunks).subarray(0, maxBytes).toString('utf8');
}
