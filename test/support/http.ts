import { TEST_API_KEY } from './tokens';

/** `POST /v1/streams/:stream/events` as a server would call it. */
export async function publishHttp(
  baseUrl: string,
  stream: string,
  body: unknown,
  { apiKey = TEST_API_KEY, idempotencyKey, rawBody }: { apiKey?: string | null; idempotencyKey?: string; rawBody?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  // No keep-alive: a pooled socket would hold the test process open after the run.
  const headers: Record<string, string> = { 'content-type': 'application/json', connection: 'close' };
  if (apiKey !== null) headers.authorization = `Bearer ${apiKey}`;
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  const response = await fetch(`${baseUrl}/v1/streams/${encodeURIComponent(stream)}/events`, {
    method: 'POST',
    headers,
    body: rawBody ?? JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
