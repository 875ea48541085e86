import { type IncomingMessage, request as httpRequest } from 'node:http';
import { type JsonBatch, stream as durableStream } from '@durable-streams/client';
import { DEFAULT_RETENTION, type PublishedEvent, streamKeys } from '@app/backplane';
import { decodeOffset, encodeOffset, type Envelope, type StreamName, type StreamSnapshotResponse } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { metric, type ReadAnswer, readHttp, SseTestReader, streamUrl } from './support/http-reads';
import { publishHttp } from './support/http';
import { range } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * HTTP reads (PROTOCOL.md §12): catch-up, paging, long-poll and SSE in the Durable Streams
 * read side's framing, read by that protocol's own client too; user JWTs and scopes; 410 for
 * offsets of lost or trimmed histories; slow SSE readers cut off; drains resumed elsewhere.
 */
const PAGE = 50;
const LONG_POLL_MS = 3_000;
let system: TestSystem;
let admin: string;
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  system = await startSystem({
    gateways: 2,
    workers: 0,
    // A reader is cut off past 1 MiB unsent: a reader that keeps reading never lags that far.
    env: { WS_MAX_BUFFERED_BYTES: String(1024 * 1024), LONG_POLL_TIMEOUT_MS: String(LONG_POLL_MS), REPLAY_MAX_EVENTS: String(PAGE), HEARTBEAT_MS: '1000' },
  });
  admin = await signToken({ sub: 'reader', scope: ['admin'] });
});
afterAll(async () => {
  cleanups.forEach((cleanup) => cleanup());
  await system?.stop();
});

const pod = (i: number) => system.gateways[i].url;
let sessionCounter = 0;
async function publishMany(stream: StreamName, count: number, bytes = 0): Promise<PublishedEvent[]> {
  const publisher = system.publisher();
  const published: PublishedEvent[] = [];
  for (let i = 0; i < count; i++) {
    published.push(await publisher.publish(stream, { type: 'session_created', payload: { sessionId: `s${++sessionCounter}`, title: 'x'.repeat(bytes) } }));
  }
  return published;
}
const seqs = (body: unknown) => (body as Envelope[]).map((e) => e.seq);

async function sse(podIndex: number, stream: StreamName, offset: string, token = admin): Promise<SseTestReader> {
  const reader = await SseTestReader.open(streamUrl(pod(podIndex), stream, { offset, live: 'sse' }), token);
  cleanups.push(() => reader.close());
  return reader;
}

describe('catch-up reads', () => {
  it('reads from -1, from an offset and from now, with the Durable Streams headers', async () => {
    const stream = 'bot:catch-up';
    await publishMany(stream, 3);
    const first = await readHttp(streamUrl(pod(0), stream, { offset: '-1' }), { token: admin });
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^application\/json/);
    const events = first.body as Envelope[];
    expect(seqs(events)).toEqual([1, 2, 3]);
    expect(events[0]).toMatchObject({ v: 1, stream, type: 'session_created', epoch: expect.any(String), id: expect.any(String) });
    const epoch = events[0].epoch;
    expect(first.next).toBe(encodeOffset({ epoch, seq: 3 }));
    expect(first.upToDate).toBe(true);
    expect(first.headers.get('stream-cursor')).toMatch(/^\d+$/);
    expect(first.headers.get('etag')).toBe(`"${stream}:-1:${first.next}"`);
    expect(first.headers.get('cache-control')).toBe('private, max-age=60, stale-while-revalidate=300');
    expect(first.headers.get('x-content-type-options')).toBe('nosniff');
    // A browser on another origin may read the offset headers.
    const cors = await readHttp(streamUrl(pod(0), stream, { offset: '-1' }), { token: admin, headers: { origin: 'https://dashboard.example' } });
    expect(cors.headers.get('access-control-expose-headers')).toBe('Stream-Next-Offset,Stream-Up-To-Date,Stream-Cursor,ETag');

    // No offset is -1; the same read again is 304 with a matching If-None-Match.
    expect(seqs((await readHttp(streamUrl(pod(1), stream), { token: admin })).body)).toEqual([1, 2, 3]);
    const again = await readHttp(streamUrl(pod(1), stream, { offset: '-1' }), { token: admin, headers: { 'if-none-match': first.headers.get('etag')! } });
    expect(again.status).toBe(304);

    await publishMany(stream, 2);
    const after = await readHttp(streamUrl(pod(1), stream, { offset: first.next! }), { token: admin });
    expect(seqs(after.body)).toEqual([4, 5]);
    expect(after.next).toBe(encodeOffset({ epoch, seq: 5 }));

    const caughtUp = await readHttp(streamUrl(pod(0), stream, { offset: after.next! }), { token: admin });
    expect(caughtUp).toMatchObject({ status: 200, body: [], next: after.next, upToDate: true });

    const now = await readHttp(streamUrl(pod(0), stream, { offset: 'now' }), { token: admin });
    expect(now).toMatchObject({ status: 200, body: [], next: encodeOffset({ epoch, seq: 5 }), upToDate: true });
    expect(now.headers.get('etag')).toBeNull();
    expect(now.headers.get('cache-control')).toBe('no-store');
  });

  it('gives a stream never published an epoch its first event keeps', async () => {
    const stream = 'dag:not-yet';
    const empty = await readHttp(streamUrl(pod(0), stream, { offset: '-1' }), { token: admin });
    expect(empty).toMatchObject({ status: 200, body: [], upToDate: true });
    const position = decodeOffset(empty.next)!;
    expect(position.seq).toBe(0);
    await system.publisher().publish(stream, { type: 'execution_state', payload: { status: 'running' } });
    const next = await readHttp(streamUrl(pod(1), stream, { offset: empty.next! }), { token: admin });
    expect(next.body).toEqual([expect.objectContaining({ seq: 1, epoch: position.epoch })]);
  });

  it('pages by REPLAY_MAX_EVENTS, following Stream-Next-Offset, with no gap and no duplicate', async () => {
    const stream = 'bot:paging';
    await publishMany(stream, 2 * PAGE + 20);
    const pages: ReadAnswer[] = [];
    let offset = '-1';
    for (;;) {
      const page = await readHttp(streamUrl(pod(pages.length % 2), stream, { offset }), { token: admin });
      pages.push(page);
      offset = page.next!;
      if (page.upToDate) break;
    }
    expect(pages.map((p) => (p.body as Envelope[]).length)).toEqual([PAGE, PAGE, 20]);
    expect(pages.map((p) => p.upToDate)).toEqual([false, false, true]);
    expect(pages.flatMap((p) => seqs(p.body))).toEqual(range(1, 2 * PAGE + 20));
  });

  it('answers a snapshot with its offset, and HEAD with the tail', async () => {
    const stream = 'bot:snapshot';
    await publishMany(stream, 4);
    const answer = await fetch(streamUrl(pod(1), stream, {}, '/snapshot'), { headers: { authorization: `Bearer ${admin}`, connection: 'close' } });
    expect(answer.status).toBe(200);
    const snapshot = (await answer.json()) as StreamSnapshotResponse;
    expect(snapshot).toMatchObject({ stream, seq: 4, epoch: expect.any(String), offset: encodeOffset({ epoch: snapshot.epoch, seq: 4 }) });
    expect((snapshot.snapshot as { sessions: unknown[] }).sessions).toHaveLength(4);
    expect(answer.headers.get('stream-next-offset')).toBe(snapshot.offset);

    await publishMany(stream, 1);
    expect(seqs((await readHttp(streamUrl(pod(0), stream, { offset: snapshot.offset }), { token: admin })).body)).toEqual([5]);
    const head = await readHttp(streamUrl(pod(0), stream), { token: admin, method: 'HEAD' });
    expect(head).toMatchObject({ status: 200, next: encodeOffset({ epoch: snapshot.epoch, seq: 5 }) });
  });
});

describe('long-poll', () => {
  it('wakes on a publish with the new events', async () => {
    const stream = 'bot:long-poll';
    await publishMany(stream, 2);
    const tail = (await readHttp(streamUrl(pod(0), stream, { offset: 'now' }), { token: admin })).next!;
    const waiting = readHttp(streamUrl(pod(0), stream, { offset: tail, live: 'long-poll' }), { token: admin });
    await waitFor(async () => (await metric(pod(0), 'rtgw_http_readers{mode="long_poll"}')) === 1, { message: 'the poll to wait' });
    const started = Date.now();
    await publishMany(stream, 1);
    const answer = await waiting;
    expect(Date.now() - started).toBeLessThan(LONG_POLL_MS / 2);
    expect(answer.status).toBe(200);
    expect(seqs(answer.body)).toEqual([3]);
    expect(answer.next).toBe(encodeOffset({ epoch: decodeOffset(tail)!.epoch, seq: 3 }));
    expect(answer.headers.get('stream-cursor')).toMatch(/^\d+$/);
  });

  it('answers at once when events are already there, and starts at the tail for offset=now', async () => {
    const stream = 'bot:long-poll-now';
    await publishMany(stream, 3);
    const ready = await readHttp(streamUrl(pod(1), stream, { offset: '-1', live: 'long-poll' }), { token: admin });
    expect(seqs(ready.body)).toEqual([1, 2, 3]);

    const waiting = readHttp(streamUrl(pod(1), stream, { offset: 'now', live: 'long-poll' }), { token: admin });
    await waitFor(async () => (await metric(pod(1), 'rtgw_http_readers{mode="long_poll"}')) === 1, { message: 'the poll to wait' });
    await publishMany(stream, 1);
    expect(seqs((await waiting).body)).toEqual([4]);
  });

  it('answers 204 with the offset, up to date, when nothing comes within the timeout', async () => {
    const stream = 'bot:long-poll-quiet';
    await publishMany(stream, 1);
    const tail = (await readHttp(streamUrl(pod(0), stream, { offset: 'now' }), { token: admin })).next!;
    const started = Date.now();
    const answer = await readHttp(streamUrl(pod(0), stream, { offset: tail, live: 'long-poll', cursor: '5' }), { token: admin });
    expect(Date.now() - started).toBeGreaterThanOrEqual(LONG_POLL_MS - 100);
    expect(answer).toMatchObject({ status: 204, body: undefined, next: tail, upToDate: true });
    expect(Number(answer.headers.get('stream-cursor'))).toBeGreaterThan(5);
    expect(answer.headers.get('cache-control')).toBe('no-store');
  });
});

describe('SSE', () => {
  it('sends history then live events as data + control, with no gap and no duplicate', async () => {
    const stream = 'bot:sse-live';
    await publishMany(stream, 3);
    const reader = await sse(1, stream, '-1');
    expect(reader.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await waitFor(() => reader.lastControl?.upToDate, { message: 'the catch-up' });
    expect(reader.kinds.slice(0, 2)).toEqual(['data', 'control']);
    expect(reader.envelopes.map((e) => e.seq)).toEqual([1, 2, 3]);
    const epoch = reader.envelopes[0].epoch;
    expect(reader.lastControl).toEqual({ streamNextOffset: encodeOffset({ epoch, seq: 3 }), streamCursor: expect.stringMatching(/^\d+$/), upToDate: true });

    // Published through the other pod's HTTP API and straight to Redis: both reach the reader live.
    await publishHttp(pod(0), stream, { type: 'session_created', payload: { sessionId: 'via-http', title: 't' } });
    await publishMany(stream, 20);
    await waitFor(() => reader.envelopes.length === 24, { message: 'the live events' });
    expect(reader.envelopes.map((e) => e.seq)).toEqual(range(1, 24));
    expect(reader.lastControl?.streamNextOffset).toBe(encodeOffset({ epoch, seq: 24 }));
    // Every data event is followed by its control event.
    expect(reader.kinds.every((kind, i) => kind === 'control' || reader.kinds[i + 1] === 'control')).toBe(true);
  });

  it('starts at the tail for offset=now, and pages through a long history first', async () => {
    const stream = 'bot:sse-now';
    await publishMany(stream, 2 * PAGE + 5);
    const fromNow = await sse(0, stream, 'now');
    await waitFor(() => fromNow.controls.length > 0, { message: 'the first control event' });
    expect(fromNow.controls[0]).toMatchObject({ streamNextOffset: expect.stringMatching(/_0000000000000105$/), upToDate: true });
    const fromStart = await sse(0, stream, '-1');
    await waitFor(() => fromStart.lastControl?.upToDate, { message: 'the catch-up' });
    expect(fromStart.controls.filter((c) => !c.upToDate)).toHaveLength(2);
    await publishMany(stream, 1);
    await waitFor(() => fromNow.envelopes.length === 1 && fromStart.envelopes.length === 2 * PAGE + 6, { message: 'the live event' });
    expect(fromNow.envelopes.map((e) => e.seq)).toEqual([2 * PAGE + 6]);
    expect(fromStart.envelopes.map((e) => e.seq)).toEqual(range(1, 2 * PAGE + 6));
  });

  it('hands over from history to live with no gap and no duplicate while publishers are busy', async () => {
    const stream = 'bot:sse-busy';
    await publishMany(stream, 3 * PAGE);
    const mid = (await readHttp(streamUrl(pod(0), stream, { offset: '-1' }), { token: admin })).next!;
    const total = 3 * PAGE + 300;
    // Two publishers keep the stream busy while readers page through history and go live.
    const publishing = Promise.all([publishMany(stream, 150), publishMany(stream, 150)]);
    const readers = [await sse(0, stream, '-1'), await sse(1, stream, '-1'), await sse(1, stream, 'now'), await sse(0, stream, mid)];
    await publishing;
    await waitFor(() => readers.every((r) => r.envelopes.at(-1)?.seq === total), { message: 'every reader at the last event', timeoutMs: 20_000 });
    for (const reader of readers) {
      const got = reader.envelopes.map((e) => e.seq);
      expect(got).toEqual(range(got[0], total));
      expect(reader.lastControl?.streamNextOffset).toMatch(new RegExp(`_${String(total).padStart(16, '0')}$`));
    }
    expect(readers[0].envelopes[0].seq).toBe(1);
    expect(readers[3].envelopes[0].seq).toBe(PAGE + 1);
    readers.forEach((reader) => reader.close());
  });

  it('keeps a quiet reader alive with comments, and ends it when its token expires', async () => {
    const stream = 'bot:sse-quiet';
    const expiring = await sse(1, stream, 'now', await signToken({ expiresInSeconds: 3 }));
    await waitFor(() => expiring.comments >= 1, { message: 'a keep-alive comment' });
    expect(await expiring.ended).toBe('ended');
    expect(await metric(pod(1), 'rtgw_http_readers_closed_total{reason="expired"}')).toBe(1);
  });

  it('cuts off a reader that stops reading, without disturbing the others', async () => {
    const stream = 'bot:sse-slow';
    const fine = await sse(0, stream, 'now');
    const slow = await new Promise<{ response: IncomingMessage; closed: Promise<void> }>((resolve, reject) => {
      const req = httpRequest(streamUrl(pod(0), stream, { offset: 'now', live: 'sse' }), { headers: { authorization: `Bearer ${admin}` } }, (response) => {
        // The client stops reading: the kernel buffers fill, then the pod's.
        response.pause();
        resolve({ response, closed: new Promise((done) => response.socket.once('close', () => done())) });
      });
      req.on('error', reject);
      req.end();
    });
    await waitFor(() => fine.controls.length > 0, { message: 'the fine reader to start' });
    // 30 MB: more than the slow reader's socket buffers and the bound together.
    await publishMany(stream, 300, 100 * 1024);
    await waitFor(() => fine.envelopes.length === 300, { message: 'the reading client got everything', timeoutMs: 30_000 }).catch(async (error: unknown) => {
      const cut = await metric(pod(0), 'rtgw_http_readers_closed_total{reason="slow_reader"}');
      throw new Error(`${String(error)} (it has ${fine.envelopes.length}; readers cut off: ${cut})`);
    });
    expect(await metric(pod(0), 'rtgw_http_readers_closed_total{reason="slow_reader"}')).toBe(1);
    // Reading again, it finds its connection was cut.
    slow.response.resume();
    await slow.closed;
    expect(slow.response.complete).toBe(false);
    expect(fine.envelopes.map((e) => e.seq)).toEqual(range(1, 300));
  });
});

describe('the Durable Streams client', () => {
  const url = (podIndex: number, stream: string) => `${pod(podIndex)}/v1/streams/${stream}`;
  const headers = () => ({ Authorization: `Bearer ${admin}` });

  it('reads a stream to its end', async () => {
    const stream = 'bot:ds-read';
    await publishMany(stream, 7);
    const response = await durableStream<Envelope>({ url: url(0, stream), headers: headers(), offset: '-1', live: false });
    expect((await response.json()).map((e) => e.seq)).toEqual(range(1, 7));
    expect(decodeOffset(response.offset)?.seq).toBe(7);
  });

  it('follows a bot stream over SSE and, when its pod drains, resumes on the other one from its offset', async () => {
    const stream = 'bot:ds-follow';
    await publishMany(stream, 5);
    // A load balancer in front of the pods: requests go to whichever is in service.
    let target = pod(0);
    const routed: typeof fetch = (input, init) => fetch(String(input).replace(pod(0), target), init);
    const received: Envelope[] = [];
    const offsets: string[] = [];
    const readers = (podIndex: number) => metric(pod(podIndex), 'rtgw_http_readers{mode="sse"}');
    const [before0, before1] = [await readers(0), await readers(1)];
    const response = await durableStream<Envelope>({ url: url(0, stream), headers: headers(), offset: '-1', live: 'sse', fetch: routed });
    cleanups.push(() => response.cancel());
    response.subscribeJson((batch: JsonBatch<Envelope>) => {
      received.push(...batch.items);
      offsets.push(batch.offset);
    });
    await waitFor(() => received.length === 5, { message: 'the catch-up' });
    await waitFor(async () => (await readers(0)) === before0 + 1, { message: 'the SSE read on pod 1' });
    await publishMany(stream, 5);
    await waitFor(() => received.length === 10, { message: 'live events' });

    // The pod drains: it ends the SSE response (the client reconnects from its last offset),
    // and answers a waiting long-poll at once.
    const tail = (await readHttp(streamUrl(pod(0), stream, { offset: 'now' }), { token: admin })).next!;
    const polling = readHttp(streamUrl(pod(0), stream, { offset: tail, live: 'long-poll' }), { token: admin });
    await waitFor(async () => (await metric(pod(0), 'rtgw_http_readers{mode="long_poll"}')) === 1, { message: 'the poll to wait' });
    const stopping = Date.now();
    target = pod(1);
    await system.gateways[0].stop();
    expect(await polling).toMatchObject({ status: 204, next: tail });
    expect(Date.now() - stopping).toBeLessThan(LONG_POLL_MS);
    await publishMany(stream, 5);
    await waitFor(() => received.length >= 15, { message: 'the events after the drain', timeoutMs: 20_000 });
    expect(await readers(1)).toBe(before1 + 1);
    await publishMany(stream, 5);
    await waitFor(() => received.length >= 20, { message: 'more live events' });
    expect(received.map((e) => e.seq)).toEqual(range(1, 20));
    expect(decodeOffset(offsets.at(-1))?.seq).toBe(20);
    response.cancel();
    await system.gateways[0].start();
  });

  it('long-polls, and after an abort resumes on another pod from its last offset', async () => {
    const stream = 'bot:ds-long-poll';
    await publishMany(stream, 3);
    const received: Envelope[] = [];
    let offset = '-1';
    const follow = async (podIndex: number) => {
      const abort = new AbortController();
      const response = await durableStream<Envelope>({ url: url(podIndex, stream), headers: headers(), offset, live: 'long-poll', signal: abort.signal });
      response.subscribeJson((batch: JsonBatch<Envelope>) => {
        received.push(...batch.items);
        offset = batch.offset;
      });
      return abort;
    };
    const first = await follow(0);
    await waitFor(() => received.length === 3, { message: 'the catch-up' });
    await publishMany(stream, 2);
    await waitFor(() => received.length === 5, { message: 'a long-poll answer' });
    first.abort();
    await publishMany(stream, 3);
    const second = await follow(1);
    cleanups.push(() => second.abort());
    await waitFor(() => received.length === 8, { message: 'the events published while it was away' });
    await publishMany(stream, 2);
    await waitFor(() => received.length === 10, { message: 'live events on the other pod' });
    second.abort();
    expect(received.map((e) => e.seq)).toEqual(range(1, 10));
  });
});

describe('refusals', () => {
  it('answers 401 without a valid token, 403 outside its scope and 400 for bad input', async () => {
    const stream = 'bot:guarded';
    await publishMany(stream, 1);
    const url = streamUrl(pod(0), stream, { offset: '-1' });
    for (const token of [null, 'garbage', await signToken({ expiresInSeconds: -10 }), await signToken({ secret: 'not-the-secret-0123456789' })]) {
      expect(await readHttp(url, { token })).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED', message: expect.any(String) } });
    }
    // The API key of the publish API is no user token.
    expect(await readHttp(url, { token: 'test-api-key-0123456789' })).toMatchObject({ status: 401 });
    const other = await signToken({ scope: ['bot:someone-else'] });
    expect(await readHttp(url, { token: other })).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
    expect(await readHttp(streamUrl(pod(0), stream, {}, '/snapshot'), { token: other })).toMatchObject({ status: 403 });
    expect(await readHttp(streamUrl(pod(0), stream, { offset: '-1', live: 'sse' }), { token: other })).toMatchObject({ status: 403 });
    expect(await readHttp(url, { token: await signToken({ scope: ['bot:guarded'] }) })).toMatchObject({ status: 200 });

    expect(await readHttp(streamUrl(pod(0), 'chan:x', { offset: '-1' }), { token: admin })).toMatchObject({
      status: 400,
      body: { code: 'VALIDATION_FAILED', details: [{ field: 'stream' }] },
    });
    const badQueries: Array<Record<string, string>> = [{ offset: 'twelve' }, { offset: '-1', live: 'websocket' }, { live: 'long-poll' }];
    for (const query of badQueries) {
      expect(await readHttp(streamUrl(pod(0), stream, query), { token: admin })).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
    }
  });

  it('offers no writes on the read URLs: 405, with or without an API key', async () => {
    for (const method of ['PUT', 'POST', 'DELETE', 'PATCH']) {
      for (const suffix of ['', '/snapshot']) {
        const answer = await readHttp(streamUrl(pod(0), 'bot:read-only', {}, suffix), { token: method === 'POST' ? 'test-api-key-0123456789' : admin, method });
        expect(answer).toMatchObject({ status: 405, body: { code: 'VALIDATION_FAILED' } });
        expect(answer.headers.get('allow')).toBe('GET, HEAD');
      }
    }
    // Publishing stays where it was, behind the API key.
    expect(await publishHttp(pod(0), 'bot:read-only', { type: 'session_created', payload: { sessionId: 's', title: 't' } })).toMatchObject({ status: 201 });
    expect(await publishHttp(pod(0), 'bot:read-only', { type: 'x', payload: {} }, { apiKey: admin })).toMatchObject({ status: 401 });
  });
});

describe('offsets of a history that is gone', () => {
  it('answers 410 with the current position when the epoch was lost', async () => {
    const stream: StreamName = 'bot:lost-epoch';
    await publishMany(stream, 3);
    const old = (await readHttp(streamUrl(pod(0), stream, { offset: '-1' }), { token: admin })).next!;
    // The stream's history is lost (a Redis without persistence restarted, an idle TTL ran out).
    const keys = streamKeys(stream);
    await system.client.del(keys.meta, keys.history, keys.checkpoint);
    const [fresh] = await publishMany(stream, 1);
    for (const live of [undefined, 'long-poll', 'sse']) {
      const answer = await readHttp(streamUrl(pod(1), stream, { offset: old, ...(live ? { live } : {}) }), { token: admin });
      expect(answer).toMatchObject({ status: 410, body: { code: 'NOT_FOUND', message: expect.stringContaining('snapshot'), epoch: fresh.epoch, seq: 1 } });
      expect(answer.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('answers 410 for an offset whose next event was trimmed, and -1 too; the snapshot offset reads on', async () => {
    const stream: StreamName = 'bot:trimmed';
    const publisher = system.publisher({ ...DEFAULT_RETENTION, maxEvents: 20, checkpointEvery: 5, trimEvery: 1 });
    let last;
    for (let i = 0; i < 40; i++) last = await publisher.publish(stream, { type: 'session_created', payload: { sessionId: `t${i}`, title: 't' } });
    await publisher.drain();
    const [[firstId]] = (await system.client.xrange(streamKeys(stream).history, '-', '+', 'COUNT', 1)) as Array<[string, string[]]>;
    const firstHeld = Number(firstId.split('-')[0]);
    expect(firstHeld).toBeGreaterThan(2);
    const epoch = last!.epoch;
    const current = { status: 410, body: { code: 'NOT_FOUND', epoch, seq: 40 } };
    expect(await readHttp(streamUrl(pod(0), stream, { offset: encodeOffset({ epoch, seq: firstHeld - 2 }) }), { token: admin })).toMatchObject(current);
    expect(await readHttp(streamUrl(pod(0), stream, { offset: '-1' }), { token: admin })).toMatchObject(current);
    const held = await readHttp(streamUrl(pod(0), stream, { offset: encodeOffset({ epoch, seq: firstHeld - 1 }) }), { token: admin });
    expect(seqs(held.body)).toEqual(range(firstHeld, 40));

    const snapshot = (await (
      await fetch(streamUrl(pod(0), stream, {}, '/snapshot'), { headers: { authorization: `Bearer ${admin}` } })
    ).json()) as StreamSnapshotResponse;
    expect((snapshot.snapshot as { sessions: unknown[] }).sessions.length).toBeGreaterThan(0);
    expect(await readHttp(streamUrl(pod(0), stream, { offset: snapshot.offset }), { token: admin })).toMatchObject({ status: 200, body: [], upToDate: true });
  });
});
