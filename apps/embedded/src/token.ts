import { join } from 'node:path';
import { isScope } from '@app/protocol';
import { parseTtl, signDevToken } from '@app/runtime';
import { DEV_CREDENTIALS_FILE, readStored } from './dev-credentials';

/**
 * `npm run token -- --sub alice --scope bot:demo --ttl 1h`: a dashboard token for development
 * and multi-process set-ups. Signed with `JWT_SECRET` when set, else with the secret `npm
 * start` keeps in .data/dev-credentials.json; `JWT_ISSUER` / `JWT_AUDIENCE` are added when
 * set, as the gateway then checks them. Prints the token alone on stdout.
 *
 *   --sub <user id>       required
 *   --scope <scope>       repeatable or comma-separated: bot:<id>, dag:<id>, bot:*, dag:*, admin
 *   --ttl <n[s|m|h|d]>    default 1h
 */
const USAGE = 'usage: npm run token -- --sub <user> --scope <scope>[,<scope>…] [--ttl 1h]';

export function parseArgs(argv: string[]): { sub: string; scope: string[]; ttlSeconds: number } {
  const values: Record<string, string[]> = { sub: [], scope: [], ttl: [] };
  for (let i = 0; i < argv.length; i++) {
    const match = /^--(sub|scope|ttl)(?:=(.*))?$/.exec(argv[i]);
    if (!match) throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
    const value = match[2] ?? argv[++i];
    if (value === undefined || value === '') throw new Error(`--${match[1]} needs a value\n${USAGE}`);
    values[match[1]].push(value);
  }
  const sub = values.sub.at(-1);
  if (!sub) throw new Error(`--sub is required\n${USAGE}`);
  const scope = values.scope.flatMap((s) => s.split(',')).filter(Boolean);
  if (scope.length === 0) throw new Error(`--scope is required\n${USAGE}`);
  const bad = scope.find((s) => !isScope(s));
  if (bad) throw new Error(`--scope ${bad} is not bot:<id>, dag:<id>, bot:*, dag:* or admin`);
  const ttl = values.ttl.at(-1) ?? '1h';
  const ttlSeconds = parseTtl(ttl);
  if (ttlSeconds === null) throw new Error(`--ttl ${ttl} is not a duration such as 90s, 30m, 1h or 7d`);
  return { sub, scope, ttlSeconds };
}

async function main(): Promise<void> {
  const claims = parseArgs(process.argv.slice(2));
  const file = join(process.cwd(), '.data', DEV_CREDENTIALS_FILE);
  const secret = process.env.JWT_SECRET || readStored(file)?.jwtSecret;
  if (!secret) throw new Error(`no JWT_SECRET set and no ${file} yet: run npm start once, or set JWT_SECRET to the gateway's secret`);
  const token = await signDevToken({ ...claims, secret, issuer: process.env.JWT_ISSUER || undefined, audience: process.env.JWT_AUDIENCE || undefined });
  process.stdout.write(`${token}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  });
}
