import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BOT_EVENT_TYPES, COMMAND_TYPES, DAG_EVENT_TYPES, ErrorCode } from '@app/protocol';
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

/** docs/protocol.md is the contract inside the repository: every command, event and error code has its row. */
it('documents every command, event type and error code in docs/protocol.md', () => {
  const doc = readFileSync(join(__dirname, '..', 'docs', 'protocol.md'), 'utf8');
  const rows = new Set([...doc.matchAll(/^\| `(\w+)`/gm)].map((m) => m[1]));
  // `pause_execution` / `resume_execution` / `cancel_execution` share a row.
  for (const m of doc.matchAll(/^\| `\w+`(?: \/ `(\w+)`)+/gm)) for (const name of m[0].matchAll(/`(\w+)`/g)) rows.add(name[1]);
  const wanted = [...COMMAND_TYPES, ...BOT_EVENT_TYPES, ...DAG_EVENT_TYPES, ...Object.values(ErrorCode)];
  expect(wanted.filter((name) => !rows.has(name))).toEqual([]);
  // No link leaves the repository.
  expect(doc).not.toMatch(/\]\((?:\.\.\/)+shared/);
});

/** The README's and docs' links inside the repository lead to files that are in it (a report named but never committed, say). */
it('has no relative link in the README or docs/ to a file that is not in the repository', () => {
  const root = join(__dirname, '..');
  const pages = [
    'README.md',
    'load/README.md',
    ...readdirSync(join(root, 'docs'))
      .filter((name) => name.endsWith('.md'))
      .map((name) => join('docs', name)),
  ];
  const broken: string[] = [];
  for (const page of pages) {
    const text = readFileSync(join(root, page), 'utf8');
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      // Addresses (https:, mailto:) and anchors in the same page are not files.
      if (/^[a-z][a-z+.-]*:/i.test(target) || target.startsWith('#')) continue;
      const path = target.split('#')[0];
      if (!existsSync(join(root, dirname(page), path))) broken.push(`${page}: ${target}`);
    }
  }
  expect(broken).toEqual([]);
});
