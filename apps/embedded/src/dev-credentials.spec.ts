import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEV_CREDENTIALS_FILE, devCredentials } from './dev-credentials';

describe('devCredentials', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'rtgw-creds-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('makes a secret and an API key once, readable by the owner only, and gives the same ones on the next start', () => {
    const first = devCredentials(dir, {});
    expect(first.jwtSecret.length).toBeGreaterThanOrEqual(32);
    expect(first.apiKey).toMatch(/^dev-[0-9a-f]{32}$/);
    expect(statSync(join(dir, DEV_CREDENTIALS_FILE)).mode & 0o777).toBe(0o600);
    expect(devCredentials(dir, {})).toEqual(first);
  });

  it('lets JWT_SECRET and the first of API_KEYS win and records them, and makes a damaged file anew, owner-only', () => {
    const file = join(dir, DEV_CREDENTIALS_FILE);
    expect(devCredentials(dir, { JWT_SECRET: 'from-env', API_KEYS: 'k1,k2' })).toEqual({ jwtSecret: 'from-env', apiKey: 'k1' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ jwtSecret: 'from-env', apiKey: 'k1' });
    writeFileSync(file, '{ not json', { mode: 0o644 });
    chmodSync(file, 0o644);
    const fresh = devCredentials(dir, {});
    expect(fresh.jwtSecret).not.toBe('from-env');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(fresh);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});
