import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import type { Envelope } from '@app/protocol';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * `libs/client` as a package: `npm pack` (whose `prepack` runs `npm run build:client`),
 * installed offline from the tarball into a directory outside the repository, then used
 * the way an application would — `require()` from CommonJS, `import` from an ES module —
 * against a running gateway over the plain WebSocket (PROTOCOL.md §11): connect, subscribe,
 * receive a published event. Also: its types resolve for both module systems, and its ESM
 * build is browser-safe (no `require`, no Node built-ins, nothing but the optional
 * `socket.io-client` outside its own files, and that only in the Socket.IO transport).
 */
const run = promisify(execFile);
const ROOT = join(__dirname, '..');
const PACKAGE = '@realtime-gateway/client';
let system: TestSystem;
let work: string;
let app: string;
let installed: string;

beforeAll(async () => {
  const started = startSystem({ gateways: 1, workers: 1 });
  work = mkdtempSync(join(tmpdir(), 'client-package-'));
  const { stdout } = await run('npm', ['pack', '--pack-destination', work, '--json'], { cwd: join(ROOT, 'libs/client'), maxBuffer: 16 * 1024 * 1024 });
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = packed.files.map((f) => f.path);
  expect(files).toContain('package.json');
  expect(files.filter((f) => f !== 'package.json' && !f.startsWith('dist/'))).toEqual([]);
  expect(files.filter((f) => /\.spec\.|\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);

  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(work, packed.filename)], { cwd: app });
  installed = join(app, 'node_modules', PACKAGE);
  system = await started;
}, 120_000);

afterAll(async () => {
  await system?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A consumer script: connects, subscribes, prints `ready`, then the first event it gets, and exits. */
const consumer = (load: string) => `${load}
const transport = process.env.TRANSPORT;
const client = new RealtimeClient({ url: process.env.GATEWAY_URL, token: process.env.TOKEN, transport, ...(WebSocket ? { WebSocket } : {}) });
const print = (line) => process.stdout.write(JSON.stringify(line) + '\\n');
const timer = setTimeout(() => { print({ timeout: client.status }); process.exit(2); }, 20000);
client.on('error', (error) => { print({ error: { name: error.name, code: error.code, message: error.message } }); process.exit(1); });
client.on('event', (event) => {
  print({ event, sessions: store.state.sessions.map((s) => s.sessionId) });
  client.close();
  clearTimeout(timer);
});
let store;
client.subscribe(process.env.STREAM).then((subscribed) => {
  store = subscribed;
  print({ ready: { serverId: client.hello.serverId, seq: store.seq, status: store.status } });
});
`;

const CJS = consumer(`const { RealtimeClient } = require('${PACKAGE}');
const WebSocket = process.env.WS_MODULE ? require(process.env.WS_MODULE) : undefined;`);
// No WebSocket class passed: the browser path, on the global WebSocket.
const ESM = consumer(`import { RealtimeClient } from '${PACKAGE}';
const WebSocket = undefined;`);

interface ConsumerRun {
  lines: Array<Record<string, unknown>>;
  code: number | null;
}

/** Runs a consumer script from the app directory; `onReady` runs once it has subscribed. */
async function runConsumer(
  file: string,
  source: string,
  env: Record<string, string>,
  onReady: () => Promise<void> = async () => undefined,
): Promise<ConsumerRun> {
  writeFileSync(join(app, file), source);
  // Node 20 has a global WebSocket only behind a flag; 22 and later have it on.
  const flags = typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'function' ? [] : ['--experimental-websocket', '--no-warnings'];
  const child = spawn(process.execPath, [...flags, file], { cwd: app, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let stderr = '';
  let pending = '';
  let ready: Promise<void> | undefined;
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const complete = pending.split('\n');
    pending = complete.pop() ?? '';
    for (const line of complete.filter(Boolean)) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      lines.push(parsed);
      if (parsed.ready) ready = onReady();
    }
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  await ready;
  if (code !== 0 && !lines.some((l) => l.error)) throw new Error(`${file} exited ${code}: ${stderr}\n${JSON.stringify(lines)}`);
  return { lines, code };
}

async function publishSession(stream: string, sessionId: string): Promise<void> {
  await system.publisher().publish(stream as `bot:${string}`, { type: 'session_created', payload: { sessionId, title: 'from the package test' } });
}

it.each([
  ['CommonJS require(), with the ws class passed in', 'consumer.cjs', CJS, true],
  ['an ES module import, on the global WebSocket', 'consumer.mjs', ESM, false],
])('works installed from the tarball: %s', async (_label, file, source, passWs) => {
  const stream = `bot:package-${file.replace('.', '-')}`;
  const env = {
    GATEWAY_URL: system.gateways[0].url,
    TOKEN: await signToken({ sub: 'package' }),
    STREAM: stream,
    TRANSPORT: 'websocket',
    ...(passWs ? { WS_MODULE: require.resolve('ws') } : {}),
  };
  const { lines, code } = await runConsumer(file, source, env, () => publishSession(stream, `s-${file}`));
  expect(code).toBe(0);
  expect(lines[0]).toEqual({ ready: { serverId: 'pod-1', seq: 0, status: 'live' } });
  const event = lines[1].event as Envelope;
  expect(event).toMatchObject({ v: 1, stream, seq: 1, type: 'session_created', payload: { sessionId: `s-${file}` } });
  expect(event).not.toHaveProperty('kind');
  expect(lines[1].sessions).toEqual([`s-${file}`]);
});

it('needs socket.io-client only for the Socket.IO transport: without it, a clear error; with it resolvable, it works', async () => {
  const stream = 'bot:package-socket-io';
  const env = { GATEWAY_URL: system.gateways[0].url, TOKEN: await signToken({ sub: 'package' }), STREAM: stream, TRANSPORT: 'socket.io' };
  const missing = await runConsumer('socket-io-missing.cjs', CJS, env);
  expect(missing.code).toBe(1);
  expect(missing.lines).toEqual([
    { error: { name: 'ProtocolError', code: 'UNAVAILABLE', message: expect.stringContaining('needs the socket.io-client package') } },
  ]);

  // The application installs the peer: here the repository's copy, found through NODE_PATH.
  const found = await runConsumer('socket-io.cjs', CJS, { ...env, NODE_PATH: join(ROOT, 'node_modules') }, () => publishSession(stream, 's-socket-io'));
  expect(found.code).toBe(0);
  expect(found.lines[1].event).toMatchObject({ stream, seq: 1, type: 'session_created' });
});

it('type-checks for CommonJS and ESM consumers (the exports map’s types)', async () => {
  const typed = (kind: string) => `import { RealtimeClient, type StreamStore, type TransportFactory } from '${PACKAGE}';
import { socketIoTransport } from '${PACKAGE}/socket.io';
const factory: TransportFactory = socketIoTransport({ transports: ['websocket'] });
const client = new RealtimeClient({ url: 'http://gateway', token: () => 'jwt', transport: 'websocket', autoConnect: false });
const other = new RealtimeClient({ url: 'http://gateway', token: 'jwt', transport: factory, autoConnect: false });
async function watch(): Promise<StreamStore<'bot'>> {
  client.on('message', (e) => e.payload.messageId.toUpperCase());
  client.on('error', (e) => e.code);
  const store = await client.subscribe('bot:demo');
  const runs: number = Object.keys(store.state.activeRuns).length;
  void runs;
  return store;
}
void watch;
void other;
export const kind = '${kind}';
`;
  writeFileSync(join(app, 'typed.cts'), typed('cjs'));
  writeFileSync(join(app, 'typed.mts'), typed('esm'));
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], types: [], strict: true, noEmit: true },
      files: ['typed.cts', 'typed.mts'],
    }),
  );
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  await expect(run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], { cwd: app })).resolves.toMatchObject({ stdout: '' });
}, 60_000);

it('ships an ESM build that is browser-safe: no require, no Node built-ins, socket.io-client only in its transport', () => {
  const esm = join(installed, 'dist/esm');
  const files = listFiles(esm).filter((f) => f.endsWith('.js'));
  const bare = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    expect({ file: relative(esm, file), requires: /\brequire\s*\(/.test(text) }).toEqual({ file: relative(esm, file), requires: false });
    for (const specifier of specifiersOf(text)) {
      if (specifier.startsWith('.')) continue;
      bare.set(specifier, [...(bare.get(specifier) ?? []), relative(esm, file)]);
    }
  }
  expect(Object.fromEntries(bare)).toEqual({ 'socket.io-client': ['client/src/transports/socket-io.js'] });
  const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  expect([...bare.keys()].filter((s) => builtins.has(s))).toEqual([]);

  // What `import '@realtime-gateway/client'` loads up front: the Socket.IO transport only on demand.
  const main = join(esm, 'client/src/index.js');
  const reached = new Set<string>();
  const visit = (file: string): void => {
    if (reached.has(file)) return;
    reached.add(file);
    for (const specifier of specifiersOf(readFileSync(file, 'utf8'), { staticOnly: true }))
      if (specifier.startsWith('.')) visit(join(dirname(file), specifier));
  };
  visit(main);
  expect([...reached].map((f) => relative(esm, f))).not.toContain('client/src/transports/socket-io.js');
  expect([...reached].map((f) => relative(esm, f))).toContain('client/src/transports/websocket.js');
});

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? listFiles(join(dir, entry.name)) : [join(dir, entry.name)]));
}

/** The module specifiers of an ES module's imports and exports (and `import()`s unless `staticOnly`). */
function specifiersOf(text: string, { staticOnly = false } = {}): string[] {
  const found = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']/gm)].map((m) => m[1] ?? m[2]);
  if (!staticOnly) found.push(...[...text.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]));
  return found;
}

it("runs the README's Client SDK program verbatim against the installed package", async () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const program = /```js\n(\/\/ app\.mjs[\s\S]*?)```/.exec(readme)?.[1];
  expect(program).toBeDefined();
  writeFileSync(join(app, 'app.mjs'), program as string);
  const flags = typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'function' ? [] : ['--experimental-websocket', '--no-warnings'];
  const { stdout } = await run(process.execPath, [...flags, 'app.mjs'], {
    cwd: app,
    env: { PATH: process.env.PATH ?? '', GATEWAY_URL: system.gateways[0].url, DEV_TOKEN: await signToken({ sub: 'readme', scope: ['bot:demo'] }) },
    timeout: 60_000,
  });
  expect(stdout).toMatch(/^sessions so far: \d+\nEcho: hello$/);
});
