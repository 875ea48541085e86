import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from '@app/runtime';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * `/ws` from a terminal, as docs/protocol.md shows it: `wscat` (the npm package) connects
 * with the token in the query, the user types command frames and reads the frames that come
 * back — hello, acks, the stream's events.
 */
let system: TestSystem;
beforeAll(async () => {
  system = await startSystem({ gateways: 1, workers: 1 });
});
afterAll(async () => {
  await system?.stop();
});

it('wscat: hello, a subscribe acked with a snapshot, a chat whose reply streams in as events', async () => {
  const token = await signToken({ sub: 'terminal', scope: ['bot:demo'] });
  const url = `${system.gateways[0].url.replace('http', 'ws')}/ws?token=${token}`;
  const wscat = spawn(process.execPath, [join(__dirname, '..', 'node_modules', 'wscat', 'bin', 'wscat'), '--no-color', '-c', url], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  wscat.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  wscat.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const frames = () =>
    output
      .split('\n')
      // A received frame is a line of its own (`< ` before it on a terminal); `> ` is the prompt.
      .map((line) => /^(?:> )?(?:< )?(\{.*\})$/.exec(line.trim())?.[1])
      .filter((json): json is string => json !== undefined)
      .map((json) => JSON.parse(json) as Record<string, unknown>);
  const type = (line: string) => wscat.stdin.write(`${line}\n`);
  try {
    await waitFor(() => frames().some((f) => f.kind === 'hello'), { message: "hello in wscat's output" });

    type('{"v":1,"id":"s1","type":"subscribe","payload":{"stream":"bot:demo"}}');
    await waitFor(() => frames().some((f) => f.kind === 'ack' && f.id === 's1'), { message: 'the subscribe ack' });
    expect(frames().find((f) => f.id === 's1')).toMatchObject({ kind: 'ack', ok: true, result: { stream: 'bot:demo', snapshot: expect.any(Object) } });

    type('{"v":1,"id":"c1","type":"chat","payload":{"botId":"demo","content":"hi from a terminal"}}');
    await waitFor(() => frames().some((f) => f.kind === 'event' && f.type === 'done'), { message: 'the run done event', timeoutMs: 30_000 });
    expect(frames().find((f) => f.id === 'c1')).toMatchObject({ kind: 'ack', ok: true });
    const events = frames().filter((f) => f.kind === 'event');
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.some((e) => e.type === 'message' && JSON.stringify(e.payload).includes('hi from a terminal'))).toBe(true);

    type('not json');
    await waitFor(() => frames().some((f) => f.kind === 'command_error'), { message: 'a command_error for the garbage line' });
    expect(frames().find((f) => f.kind === 'command_error')).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
  } finally {
    wscat.kill('SIGINT');
  }
});
