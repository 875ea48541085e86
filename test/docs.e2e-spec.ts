import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayEnv } from '../apps/gateway/src/config/gateway.env';
import { OpenAiEnv } from '../apps/worker/src/agents/providers/openai-config';
import { WorkerEnv } from '../apps/worker/src/config/worker-config';

/** The README documents every configuration variable the processes read. */
it('lists every gateway, worker and model provider variable in the README', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const variables = new Set([...Object.keys(new GatewayEnv()), ...Object.keys(new WorkerEnv()), ...Object.keys(new OpenAiEnv())]);
  const missing = [...variables].filter((name) => !readme.includes(`\`${name}\``));
  expect(missing).toEqual([]);
  expect(readme).toContain('npm ci && npm start');
  expect(readme).toContain('npm ci && npm test');
});
