import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startSystem, type TestSystem } from './support/system';
import { TEST_JWT_SECRET } from './support/tokens';

/**
 * The README's newcomer path, run as written: a token from `npm run token`, then
 * `npm run example:chat` (examples/chat.ts) against a running gateway and worker.
 */
const run = promisify(execFile);
const ROOT = join(__dirname, '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let system: TestSystem;
beforeAll(async () => {
  system = await startSystem({ gateways: 1, workers: 1 });
});
afterAll(async () => {
  await system?.stop();
});

it('npm run token, then npm run example:chat: the demo bot streams its reply and the run completes', async () => {
  // The gateway's secret, as JWT_SECRET (npm start's own would come from .data/dev-credentials.json).
  const env = { ...process.env, JWT_SECRET: TEST_JWT_SECRET };
  const { stdout: token } = await run(npm, ['run', '-s', 'token', '--', '--sub', 'alice', '--scope', 'bot:demo', '--ttl', '1h'], { cwd: ROOT, env });
  const { stdout } = await run(npm, ['run', '-s', 'example:chat', '--', 'hello there'], {
    cwd: ROOT,
    env: { ...env, DEV_TOKEN: token.trim(), GATEWAY_URL: system.gateways[0].url },
    timeout: 60_000,
  });
  const lines = stdout.trim().split('\n');
  expect(lines[0]).toBe('bot:demo: 0 runs in progress');
  expect(lines[1]).toBe('Echo: hello there');
  expect(lines[2]).toMatch(/^run \S+ completed$/);
});
