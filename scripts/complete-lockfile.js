#!/usr/bin/env node
/**
 * This machine's npm registry lacks some platform builds of optional native packages
 * (e.g. darwin builds of @msgpackr-extract/*), so `npm install` writes a lockfile without
 * them and `npm ci` then refuses it ("Missing: … from lock file"). This adds an entry for
 * each missing optional dependency, with its os/cpu/libc, so `npm ci` skips it on other
 * platforms exactly as it would with a complete lockfile. Run it after `npm install`
 * (`npm run lock:complete`); it changes nothing when the lockfile is complete.
 */
const { execFileSync } = require('node:child_process');
const { readFileSync, writeFileSync } = require('node:fs');

const file = require('node:path').join(__dirname, '..', 'package-lock.json');
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;
const added = [];

for (const [path, meta] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const nested = `${path ? `${path}/` : ''}node_modules/${name}`;
    const hoisted = `node_modules/${name}`;
    if (packages[nested] || packages[hoisted]) continue;
    let info = {};
    try {
      const out = execFileSync('npm', ['view', name, 'os', 'cpu', 'libc', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      info = out.trim() ? JSON.parse(out) : {};
      if (Array.isArray(info)) info = info.at(-1);
    } catch {
      // Unknown to this registry entirely: record it without platform fields.
    }
    const entry = { version, optional: true, ...(meta.dev ? { dev: true } : {}) };
    for (const key of ['cpu', 'os', 'libc']) if (info[key]) entry[key] = info[key];
    packages[hoisted] = entry;
    added.push(`${name}@${version}`);
  }
}

if (added.length > 0) {
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
  console.log(`added ${added.length} optional platform entries:\n  ${added.join('\n  ')}`);
} else {
  console.log('lockfile complete');
}
