import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from '@app/runtime';

/**
 * The README's newcomer path as written. Every code block is accounted for: the TypeScript
 * programs it shows are the example files themselves, byte for byte; the shell blocks a
 * newcomer runs against `npm start` run here verbatim, in a directory that sees the
 * repository, against the embedded launcher (`npm start`'s system) — the one change being the
 * port, as tests never bind a fixed one; the rest are run by other tests or need what this
 * machine has not (named below, so a new block cannot go unchecked).
 */
const run = promisify(execFile);
const ROOT = join(__dirname, '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const blocks = [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map(([, lang, body]) => ({ lang, body }));

/** Shell blocks not run here, by their first line, and why. */
const NOT_HERE: Record<string, string> = {
  'npm ci && npm start     # private Redis + one gateway + one worker; prints the URL, a dev token and an API key':
    'npm ci needs the registry; `npm start` is the embedded launcher this file runs (and test/embedded.e2e-spec.ts)',
  'AGENT_PROVIDER=openai AGENT_MODEL=llama3.1 OPENAI_MODEL=llama3.1 OPENAI_BASE_URL=http://127.0.0.1:11434/v1 npm start   # Ollama':
    'needs a model server; the OpenAI-compatible provider runs against a fake one in test/agents-openai.e2e-spec.ts',
  'npm run build:client                        # → libs/client/dist (tsc twice: ESM and CommonJS)':
    'test/client-package.e2e-spec.ts packs, installs and runs it',
  'npm run build': 'names the shared Redis (127.0.0.1:6379), which tests never touch; test/support/system.ts starts the same processes',
  'kubectl create secret generic realtime-gateway-secrets --from-literal=JWT_SECRET=… --from-literal=API_KEYS=…':
    'no Kubernetes here; test/k8s.e2e-spec.ts renders and validates the manifests',
};

it('shows each TypeScript program as the example file it is, byte for byte', () => {
  const programs = blocks.filter((b) => b.lang === 'ts');
  expect(programs.length).toBeGreaterThan(0);
  for (const { body } of programs) {
    const file = /^\/\/ (examples\/[\w-]+\.ts) /.exec(body)?.[1];
    expect(file).toBeDefined();
    expect(body).toBe(readFileSync(join(ROOT, file as string), 'utf8'));
  }
});

it('accounts for every shell block: run here, or named with the test that covers it', () => {
  const here = ['API_KEY=$(node -p', 'DEV_TOKEN=$(npm run -s token -- --sub alice --scope '];
  const shell = blocks.filter((b) => b.lang === 'sh').map((b) => b.body.split('\n')[0]);
  expect(shell.filter((first) => !here.some((start) => first.startsWith(start)) && !(first in NOT_HERE))).toEqual([]);
});

it('runs the newcomer path verbatim against npm start: a token, a curl publish, the chat, quickstart and DAG examples', async () => {
  // A directory that sees the repository as a clone would, with its own .data/.
  const cwd = mkdtempSync(join(tmpdir(), 'rtgw-readme-'));
  for (const entry of ['package.json', 'node_modules', 'apps', 'libs', 'examples', 'tsconfig.json', 'dist']) symlinkSync(join(ROOT, entry), join(cwd, entry));
  const [port, workerPort] = [await freePort(), await freePort()];
  const launcher = spawn(process.execPath, [join(cwd, 'dist', 'apps', 'embedded', 'main.js')], {
    cwd,
    env: { PATH: process.env.PATH, PORT: String(port), WORKER_PORT: String(workerPort), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  launcher.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  launcher.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => launcher.once('exit', resolve));
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, GATEWAY_URL: `http://localhost:${port}` };
  const sh = (script: string) =>
    run('bash', ['-euo', 'pipefail', '-c', script.replaceAll('localhost:3000', `localhost:${port}`)], { cwd, env, timeout: 90_000 });
  try {
    await waitFor(() => output.includes('Realtime gateway ready at') || launcher.exitCode !== null, { timeoutMs: 60_000, message: 'the ready banner' });
    if (launcher.exitCode !== null) throw new Error(`the launcher exited (${launcher.exitCode}):\n${output}`);

    const tryIt = blocks.find((b) => b.lang === 'sh' && b.body.startsWith('API_KEY=$(node -p'))?.body as string;
    // The block as written, then the quickstart with the token it exported.
    const { stdout } = await sh(`${tryIt}\nnpm run -s example:quickstart`);
    // curl's answers have no newline of their own: the publish's answer, the read's array,
    // then the chat example's first line follow each other.
    const answer = /^(\{[^{}]*\})/.exec(stdout)?.[1] as string;
    const chatStart = stdout.indexOf('bot:demo: ');
    const published = JSON.parse(answer) as { seq: number; id: string };
    expect(published).toMatchObject({ stream: 'bot:demo', seq: expect.any(Number), epoch: expect.any(String), id: expect.any(String) });
    const readBack = JSON.parse(stdout.slice(answer.length, chatStart)) as Array<{ seq: number; id: string; type: string }>;
    expect(readBack.find((e) => e.seq === published.seq)).toMatchObject({ id: published.id, type: 'session_created' });
    const lines = stdout.slice(chatStart).trim().split('\n');
    expect(lines).toContain('Echo: hello there');
    expect(lines.some((line) => /^run \S+ completed$/.test(line))).toBe(true);
    expect(lines.at(-1)).toMatch(/^run \S+ done$/);

    const dagLine = blocks.find((b) => b.lang === 'sh' && b.body.startsWith('DEV_TOKEN=$(npm run -s token -- --sub alice --scope '))?.body as string;
    const dag = await sh(dagLine);
    expect(dag.stdout.trim().split('\n').at(-1)).toMatch(/^execution \S+ completed, cost [\d.]+$/);

    launcher.kill('SIGTERM');
    expect(await exited).toBe(0);
  } finally {
    launcher.kill('SIGKILL');
    rmSync(cwd, { recursive: true, force: true });
  }
}, 180_000);
