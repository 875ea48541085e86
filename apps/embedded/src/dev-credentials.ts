import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The embedded system's JWT secret and API key. Made once and kept in
 * `.data/dev-credentials.json` (readable by the owner only), so tokens minted with `npm run
 * token` and scripts holding the API key keep working across restarts of `npm start`.
 * `JWT_SECRET` and the first of `API_KEYS` win when set, and the file then holds them: it
 * always says what the running system uses.
 */
export interface DevCredentials {
  jwtSecret: string;
  apiKey: string;
}

export const DEV_CREDENTIALS_FILE = 'dev-credentials.json';

export function devCredentials(dataDir: string, env: NodeJS.ProcessEnv = process.env): DevCredentials {
  const file = join(dataDir, DEV_CREDENTIALS_FILE);
  const stored = readStored(file);
  const used = {
    jwtSecret: env.JWT_SECRET || stored?.jwtSecret || randomBytes(24).toString('base64url'),
    apiKey: env.API_KEYS?.split(',')[0] || stored?.apiKey || `dev-${randomBytes(16).toString('hex')}`,
  };
  // What the running system uses, so `npm run token` signs with the gateway's secret even
  // when this start took it from JWT_SECRET.
  if (stored?.jwtSecret !== used.jwtSecret || stored?.apiKey !== used.apiKey) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, `${JSON.stringify(used, null, 2)}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return used;
}

/** The stored credentials, or null when there are none yet (a damaged file is made anew). */
export function readStored(file: string): DevCredentials | null {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<DevCredentials>;
    return typeof parsed.jwtSecret === 'string' && parsed.jwtSecret && typeof parsed.apiKey === 'string' && parsed.apiKey
      ? { jwtSecret: parsed.jwtSecret, apiKey: parsed.apiKey }
      : null;
  } catch {
    return null;
  }
}
