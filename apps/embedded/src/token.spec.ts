import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwtVerify } from 'jose';
import { DEV_CREDENTIALS_FILE } from './dev-credentials';
import { parseArgs } from './token';

const ROOT = join(__dirname, '..', '..', '..');

/** Runs `npm run token`'s script as npm would, in `cwd`. */
function token(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const { JWT_SECRET: _secret, ...inherited } = process.env;
  return spawnSync(
    process.execPath,
    [
      '-r',
      require.resolve('ts-node/register/transpile-only'),
      '-r',
      require.resolve('tsconfig-paths/register'),
      join(ROOT, 'apps/embedded/src/token.ts'),
      ...args,
    ],
    { cwd, env: { ...inherited, TS_NODE_PROJECT: join(ROOT, 'tsconfig.json'), ...env }, encoding: 'utf8' },
  );
}

describe('npm run token', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rtgw-token-'));
    mkdirSync(join(dir, '.data'));
    writeFileSync(join(dir, '.data', DEV_CREDENTIALS_FILE), JSON.stringify({ jwtSecret: 'the-embedded-secret-0123456789', apiKey: 'dev-x' }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('signs with the secret npm start keeps: sub, scopes, TTL', async () => {
    const run = token(['--sub', 'alice', '--scope', 'bot:demo,dag:*', '--ttl', '30m'], dir);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const { payload } = await jwtVerify(run.stdout.trim(), new TextEncoder().encode('the-embedded-secret-0123456789'));
    expect(payload).toMatchObject({ sub: 'alice', scope: ['bot:demo', 'dag:*'] });
    expect((payload.exp as number) - (payload.iat as number)).toBe(1800);
  });

  it('prefers JWT_SECRET, and adds JWT_ISSUER / JWT_AUDIENCE', async () => {
    const run = token(['--sub', 'bob', '--scope', 'admin'], dir, { JWT_SECRET: 'env-secret-0123456789-abcdef', JWT_ISSUER: 'idp', JWT_AUDIENCE: 'gw' });
    const { payload } = await jwtVerify(run.stdout.trim(), new TextEncoder().encode('env-secret-0123456789-abcdef'), { issuer: 'idp', audience: 'gw' });
    expect(payload.sub).toBe('bob');
  });

  it('says what is wrong and exits 2: no secret anywhere, a bad scope, a bad TTL, a missing --sub', () => {
    const empty = mkdtempSync(join(tmpdir(), 'rtgw-token-'));
    try {
      const none = token(['--sub', 'a', '--scope', 'admin'], empty);
      expect([none.status, none.stdout]).toEqual([2, '']);
      expect(none.stderr).toMatch(/no JWT_SECRET set and no .*dev-credentials.json yet: run npm start once/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    expect(() => parseArgs(['--sub', 'a', '--scope', 'bots:x'])).toThrow('--scope bots:x is not bot:<id>, dag:<id>, bot:*, dag:* or admin');
    expect(() => parseArgs(['--sub', 'a', '--scope', 'admin', '--ttl', '1w'])).toThrow('--ttl 1w is not a duration');
    expect(() => parseArgs(['--scope', 'admin'])).toThrow('--sub is required');
    expect(() => parseArgs(['--sub', 'a', '--scope', 'admin', '--role', 'x'])).toThrow('unknown argument --role');
    expect(parseArgs(['--sub=a', '--scope', 'bot:demo', '--scope', 'bot:other'])).toEqual({ sub: 'a', scope: ['bot:demo', 'bot:other'], ttlSeconds: 3600 });
  });
});
