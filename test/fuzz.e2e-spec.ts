import fc from 'fast-check';
import { type Ack, ErrorCode, MAX_JSON_DEPTH } from '@app/protocol';
import { hostileCommandArb, nestedValue } from '@app/protocol/testing/hostile-commands';
import { waitFor } from '@app/runtime';
import { publishHttp } from './support/http';
import { TEST_API_KEY, signToken } from './support/tokens';
import { RawSocketIo } from './support/raw-ws';
import { connectSocket, loose, type TestSocket } from './support/sockets';
import { startSystem, type TestSystem } from './support/system';

/**
 * A black-box fuzz of the command path over a real Socket.IO connection: thousands of random
 * and hostile commands (random JSON, prototype-named keys, values nested far past the depth
 * limit, planted anywhere in otherwise valid payloads). Every command gets exactly one ack,
 * ok or a contract error other than INTERNAL; the connection stays open and works afterwards.
 * The generator is seeded: FUZZ_SEED=<n> replays a failing run.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261127);
const COMMANDS = 2000;
/** Commands in flight at once: enough to overlap, far below the rate limit set below. */
const CONCURRENCY = 40;
const MAX_PAYLOAD = 64 * 1024;
const CONTRACT_CODES = new Set<string>(Object.values(ErrorCode).filter((code) => code !== ErrorCode.INTERNAL));

let system: TestSystem;
let url: string;
let socket: TestSocket;
let disconnects = 0;

beforeAll(async () => {
  system = await startSystem({
    gateways: 1,
    workers: 1,
    env: { COMMANDS_PER_SECOND: '5000', MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD) },
  });
  url = system.gateways[0].url;
  socket = await connectSocket(url, await signToken({ sub: 'fuzzer', scope: ['bot:*', 'dag:*'] }));
  socket.socket.on('disconnect', () => disconnects++);
});
afterAll(async () => {
  socket?.close();
  await system?.stop();
});

function send(frame: unknown): Promise<Ack> {
  return loose(socket.socket).timeout(15_000).emitWithAck('command', frame) as Promise<Ack>;
}

/** What is wrong with an ack, or null: ok with a result, or a contract error a client can act on. */
function problemOf(ack: Ack): string | null {
  if (ack.ok) return ack.result !== undefined ? null : 'ok without a result';
  if (!CONTRACT_CODES.has(ack.error.code)) return `code ${ack.error.code}`;
  if (ack.error.code === ErrorCode.VALIDATION_FAILED && !(ack.error.details?.length ?? 0)) return 'VALIDATION_FAILED without details';
  return null;
}

/** Frame-level hostility on top of the payload's: unknown and prototype-named types and fields. */
const frameArb = fc
  .tuple(
    hostileCommandArb,
    fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('constructor', '__proto__', 'toString', 'teleport') }),
    fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('constructor', '__proto__', 'prototype', 'extra') }),
  )
  .map(([{ type, payload }, otherType, extraKey]) => {
    const frame: Record<string, unknown> = { v: 1, type: otherType ?? type, payload };
    if (extraKey) Object.defineProperty(frame, extraKey, { value: { polluted: true }, enumerable: true });
    return frame;
  });

describe('a fuzzed command stream', () => {
  it(`answers ${COMMANDS} random and hostile commands once each, never INTERNAL (seed ${SEED})`, async () => {
    const frames = fc.sample(frameArb, { seed: SEED, numRuns: COMMANDS }).map((frame, i) => ({ ...frame, id: `fz-${SEED}-${i}` }));
    const problems: string[] = [];
    const codes = new Map<string, number>();
    for (let start = 0; start < frames.length; start += CONCURRENCY) {
      const batch = frames.slice(start, start + CONCURRENCY);
      const acks = await Promise.all(batch.map((frame) => send(frame).catch((error: unknown) => error as Error)));
      acks.forEach((ack, i) => {
        const outcome = ack instanceof Error ? 'no ack' : ack.ok ? 'ok' : ack.error.code;
        codes.set(outcome, (codes.get(outcome) ?? 0) + 1);
        const problem = ack instanceof Error ? `no ack (${ack.message})` : problemOf(ack);
        if (problem) problems.push(`#${start + i} ${problem}: ${JSON.stringify(batch[i]).slice(0, 300)}`);
      });
    }
    expect({ seed: SEED, problems: problems.slice(0, 20) }).toEqual({ seed: SEED, problems: [] });
    // Most of the fuzz is refused, some of it passes: both paths were exercised.
    expect(codes.get('VALIDATION_FAILED') ?? 0).toBeGreaterThan(COMMANDS / 2);
    expect(codes.get('ok') ?? 0).toBeGreaterThan(0);
    expect(socket.received.filter((r) => r.event === 'command_error')).toEqual([]);
    expect(socket.socket.connected).toBe(true);
    expect(disconnects).toBe(0);
  });

  it('answers the inputs that once reached INTERNAL with VALIDATION_FAILED and their details', async () => {
    expect(await socket.command('plan_response', { planId: [null, { constructor: true, prototype: 1.5 }] })).toMatchObject({
      ok: false,
      error: {
        code: 'VALIDATION_FAILED',
        details: [
          { field: 'planId.1.constructor', constraint: 'whitelistValidation' },
          { field: 'planId.1.prototype', constraint: 'whitelistValidation' },
        ],
      },
    });
    expect(await socket.command('new_session', nestedValue(3000, 1, 'object'))).toMatchObject({
      ok: false,
      error: { code: 'VALIDATION_FAILED', details: [{ field: `a${'.a'.repeat(MAX_JSON_DEPTH - 1)}`, constraint: 'maxDepth' }] },
    });
    expect(await socket.command('chat', { botId: 'b1', content: 'hi', constructor: 'x' })).toEqual({
      ok: false,
      error: {
        code: 'VALIDATION_FAILED',
        message: 'invalid chat payload',
        details: [{ field: 'constructor', constraint: 'whitelistValidation', message: expect.any(String) }],
      },
    });
    expect(await socket.command('chat', { botId: 'b1', content: 'hi', toString: 'x' })).toMatchObject({
      ok: false,
      error: { code: 'VALIDATION_FAILED', details: [{ field: 'toString', constraint: 'whitelistValidation' }] },
    });
  });

  it('answers frames too deep for any recursive code, sent by hand, and keeps the connection', async () => {
    const raw = await RawSocketIo.connect(url, await signToken({ sub: 'fuzzer', scope: ['bot:*'] }));
    // 30,000 levels: JSON.parse copes, JSON.stringify and class-transformer would not.
    const deep = `${'['.repeat(30_000)}1${']'.repeat(30_000)}`;
    raw.send(`421["command",{"v":1,"id":"deep-1","type":"new_session","payload":{"botId":${deep}}}]`);
    expect(await raw.next((f) => f.startsWith('431['))).toContain('"constraint":"maxDepth"');
    // An own __proto__ key, as JSON.parse makes it: refused like any unknown field.
    raw.send('422["command",{"v":1,"id":"proto-1","type":"chat","payload":{"botId":"b1","content":"x","__proto__":{"polluted":true}}}]');
    const proto = await raw.next((f) => f.startsWith('432['));
    expect(proto).toContain('"field":"__proto__","constraint":"whitelistValidation"');
    // The same depth in a binary packet: socket.io-parser's reconstruction recurses.
    raw.send(`451-3["command",{"v":1,"id":"deep-2","type":"new_session","payload":{"botId":${deep},"title":{"_placeholder":true,"num":0}}}]`);
    raw.send(Buffer.from('attachment'));
    expect(await raw.next((f) => f.startsWith('433['))).toContain('"constraint":"decodable"');
    raw.send('424["command",{"v":1,"id":"after-deep","type":"subscribe","payload":{"stream":"bot:ok"}}]');
    expect(await raw.next((f) => f.startsWith('434['))).toContain('"ok":true');
    expect(raw.open).toBe(true);
    raw.close();
  });

  it('refuses deep and prototype-keyed HTTP bodies with 400 VALIDATION_FAILED', async () => {
    const deepArgs = `${'['.repeat(20_000)}1${']'.repeat(20_000)}`;
    const rawBody = `{"type":"tool_start","payload":{"sessionId":"s","runId":"r","toolCallId":"t","tool":"x","args":${deepArgs}}}`;
    expect(await publishHttp(url, 'bot:fz', null, { rawBody })).toMatchObject({
      status: 400,
      body: { code: 'VALIDATION_FAILED', details: [{ constraint: 'maxDepth' }] },
    });
    const proto = await publishHttp(url, 'bot:fz', null, { rawBody: '{"type":"custom_event","payload":{"__proto__":{"polluted":true}}}' });
    expect(proto).toMatchObject({ status: 400, body: { details: [{ field: 'payload.__proto__', constraint: 'whitelistValidation' }] } });
    const inbound = await fetch(`${url}/v1/bots/fz/inbound`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_API_KEY}`, connection: 'close' },
      body: JSON.stringify({ platform: 'slack', chatId: 'c1', content: 'hi', constructor: { prototype: 1 } }),
    });
    expect({ status: inbound.status, body: (await inbound.json()) as unknown }).toMatchObject({
      status: 400,
      body: { details: [{ field: 'constructor', constraint: 'whitelistValidation' }] },
    });
  });

  it('still runs a normal chat afterwards, and nothing reached the validator fallback', async () => {
    expect(await socket.command('subscribe', { stream: 'bot:after-fuzz' })).toMatchObject({ ok: true });
    const ack = await socket.command<{ runId: string }>('chat', { botId: 'after-fuzz', content: 'hello after the fuzz' });
    expect(ack).toMatchObject({ ok: true, result: { runId: expect.any(String) } });
    const runId = ack.ok ? ack.result.runId : '';
    await waitFor(() => socket.events.some((e) => e.stream === 'bot:after-fuzz' && e.type === 'done' && (e.payload as { runId?: string }).runId === runId), {
      timeoutMs: 45_000,
      message: 'the chat run finished',
    });
    expect(system.gateways[0].logs).not.toContain('RTGW_VALIDATOR_FAILED');
    expect((await fetch(`${url}/readyz`, { headers: { connection: 'close' } })).status).toBe(200);
  });
});
