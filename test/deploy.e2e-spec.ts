import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { parse } from 'yaml';
import { loadGatewayConfig } from '../apps/gateway/src/config/gateway-config';
import { GatewayEnv } from '../apps/gateway/src/config/gateway.env';
import { loadWorkerConfig, WorkerEnv } from '../apps/worker/src/config/worker-config';

/**
 * Keeps the deployment files (Dockerfile, docker-compose.yml, deploy/nginx.conf) honest
 * without a Docker engine: they are parsed and checked against the compose spec, the env
 * DTOs, the real config loaders and what `npm run build` produces.
 */

const ROOT = join(__dirname, '..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

type Dict = Record<string, unknown>;
const isDict = (value: unknown): value is Dict => typeof value === 'object' && value !== null && !Array.isArray(value);
function dict(value: unknown, where: string): Dict {
  if (!isDict(value)) throw new Error(`${where}: expected a mapping, got ${JSON.stringify(value)}`);
  return value;
}

// ---------------------------------------------------------------------------------------
// Compose interpolation: the forms this project's compose file may use. Any other `$` form
// fails loudly, so the helper is extended instead of silently passing something through.

type Env = Record<string, string | undefined>;

function interpolate(text: string, env: Env): string {
  return text.replace(/\$\$|\$\{([^}]*)\}|\$/g, (match, body: string | undefined) => {
    if (match === '$$') return '$';
    const form = body === undefined ? null : /^([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^$]*))?$/s.exec(body);
    if (!form) throw new Error(`unsupported interpolation ${JSON.stringify(match)} in ${JSON.stringify(text)}`);
    const [, name, operator, operand = ''] = form;
    const value = env[name];
    const unset = value === undefined || value === '';
    if (operator === ':-') return unset ? operand : value;
    if (operator === ':?' && unset) throw new Error(`required variable ${name} is missing a value: ${operand}`);
    return value ?? '';
  });
}

function interpolateAll(node: unknown, env: Env): unknown {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((item) => interpolateAll(item, env));
  if (isDict(node)) return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, interpolateAll(value, env)]));
  return node;
}

/** docker-compose.yml as compose sees it: merge keys applied, variables substituted. */
function loadCompose(env: Env): Dict {
  const raw: unknown = parse(read('docker-compose.yml'), { merge: true });
  return dict(interpolateAll(raw, env), 'docker-compose.yml');
}

/** What the operator's shell holds: nothing (dev defaults) or real values. */
const NO_ENV: Env = {};
const OPERATOR_ENV: Env = {
  JWT_SECRET: 'operator-secret-0123456789abcdef',
  API_KEYS: 'operator-key-0123456789,operator-key-abcdefghij',
  CORS_ORIGINS: 'https://dashboard.example.com',
  LOG_LEVEL: 'debug',
};

const compose = loadCompose(NO_ENV);
const services = dict(compose.services, 'services');
const service = (name: string): Dict => dict(services[name], `services.${name}`);

/** A service's environment as the container gets it (values are strings; null = unset). */
function environmentOf(svc: Dict): Record<string, string> {
  const env = svc.environment ?? {};
  const entries: Array<[string, unknown]> = Array.isArray(env)
    ? env.map((line) => {
        const [key, ...rest] = String(line).split('=');
        return [key, rest.length > 0 ? rest.join('=') : null];
      })
    : Object.entries(dict(env, 'environment'));
  return Object.fromEntries(entries.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [k, String(v)]));
}

/** Compose durations ("1m30s", "45s", "500ms") in milliseconds. */
function durationMs(value: unknown): number {
  const text = String(value);
  const unit: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new Error(`not a compose duration: ${text}`);
  return parts.reduce((sum, [, n, u]) => sum + Number(n) * unit[u], 0);
}

// Allow-lists from the compose specification (schema/compose-spec.json). Anything else is a
// typo that Docker Compose would reject, or worse, that an older version would ignore.
const TOP_LEVEL_KEYS = ['services', 'volumes', 'networks', 'configs', 'secrets', 'name'];
const SERVICE_KEYS = [
  'annotations',
  'attach',
  'blkio_config',
  'build',
  'cap_add',
  'cap_drop',
  'cgroup',
  'cgroup_parent',
  'command',
  'configs',
  'container_name',
  'cpu_count',
  'cpu_percent',
  'cpu_period',
  'cpu_quota',
  'cpu_rt_period',
  'cpu_rt_runtime',
  'cpu_shares',
  'cpus',
  'cpuset',
  'credential_spec',
  'depends_on',
  'deploy',
  'develop',
  'device_cgroup_rules',
  'devices',
  'dns',
  'dns_opt',
  'dns_search',
  'domainname',
  'entrypoint',
  'env_file',
  'environment',
  'expose',
  'extends',
  'external_links',
  'extra_hosts',
  'gpus',
  'group_add',
  'healthcheck',
  'hostname',
  'image',
  'init',
  'ipc',
  'isolation',
  'label_file',
  'labels',
  'links',
  'logging',
  'mac_address',
  'mem_limit',
  'mem_reservation',
  'mem_swappiness',
  'memswap_limit',
  'network_mode',
  'networks',
  'oom_kill_disable',
  'oom_score_adj',
  'pid',
  'pids_limit',
  'platform',
  'ports',
  'post_start',
  'pre_stop',
  'privileged',
  'profiles',
  'pull_policy',
  'read_only',
  'restart',
  'runtime',
  'scale',
  'secrets',
  'security_opt',
  'shm_size',
  'stdin_open',
  'stop_grace_period',
  'stop_signal',
  'storage_opt',
  'sysctls',
  'tmpfs',
  'tty',
  'ulimits',
  'user',
  'userns_mode',
  'uts',
  'volumes',
  'volumes_from',
  'working_dir',
];
const HEALTHCHECK_KEYS = ['test', 'interval', 'timeout', 'retries', 'start_period', 'start_interval', 'disable'];
const DEPLOY_KEYS = ['mode', 'endpoint_mode', 'replicas', 'labels', 'rollback_config', 'update_config', 'resources', 'restart_policy', 'placement'];
const DEPENDS_ON_KEYS = ['condition', 'restart', 'required'];
const BUILD_KEYS = [
  'context',
  'dockerfile',
  'dockerfile_inline',
  'entitlements',
  'args',
  'ssh',
  'labels',
  'cache_from',
  'cache_to',
  'no_cache',
  'additional_contexts',
  'network',
  'pull',
  'target',
  'shm_size',
  'extra_hosts',
  'isolation',
  'privileged',
  'secrets',
  'tags',
  'ulimits',
  'platforms',
];
const unknownKeys = (value: Dict, allowed: string[]): string[] => Object.keys(value).filter((key) => !key.startsWith('x-') && !allowed.includes(key));

// ---------------------------------------------------------------------------------------

describe('compose interpolation helper', () => {
  it('substitutes the supported forms and rejects the rest', () => {
    const env = { SET: 'v', EMPTY: '' };
    expect(interpolate('${SET}|${SET:-d}|${EMPTY:-d}|${UNSET:-d}|$${SET}', env)).toBe('v|v|d|d|${SET}');
    expect(interpolate('${SET:?needed}', env)).toBe('v');
    expect(() => interpolate('${UNSET:?set it}', env)).toThrow('UNSET is missing a value: set it');
    expect(() => interpolate('$SET', env)).toThrow('unsupported');
    expect(() => interpolate('${SET:+alt}', env)).toThrow('unsupported');
  });
});

describe('docker-compose.yml', () => {
  it('uses only top-level keys the compose spec allows', () => {
    expect(unknownKeys(compose, TOP_LEVEL_KEYS)).toEqual([]);
  });

  it('uses only known compose attributes in every service (catches typos)', () => {
    const problems: string[] = [];
    for (const [name, value] of Object.entries(services)) {
      const svc = dict(value, name);
      unknownKeys(svc, SERVICE_KEYS).forEach((key) => problems.push(`${name}.${key}`));
      if (svc.healthcheck !== undefined)
        unknownKeys(dict(svc.healthcheck, 'healthcheck'), HEALTHCHECK_KEYS).forEach((k) => problems.push(`${name}.healthcheck.${k}`));
      if (svc.deploy !== undefined) unknownKeys(dict(svc.deploy, 'deploy'), DEPLOY_KEYS).forEach((k) => problems.push(`${name}.deploy.${k}`));
      if (isDict(svc.build)) unknownKeys(svc.build, BUILD_KEYS).forEach((k) => problems.push(`${name}.build.${k}`));
      if (isDict(svc.depends_on)) {
        for (const [dep, spec] of Object.entries(svc.depends_on)) {
          if (!(dep in services)) problems.push(`${name}.depends_on.${dep} (no such service)`);
          unknownKeys(dict(spec, dep), DEPENDS_ON_KEYS).forEach((k) => problems.push(`${name}.depends_on.${dep}.${k}`));
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('writes every duration in compose duration syntax', () => {
    for (const [name, value] of Object.entries(services)) {
      const svc = dict(value, name);
      if (svc.stop_grace_period !== undefined) expect(() => durationMs(svc.stop_grace_period)).not.toThrow();
      if (!isDict(svc.healthcheck)) continue;
      for (const key of ['interval', 'timeout', 'start_period', 'start_interval']) {
        const value = svc.healthcheck[key];
        if (value !== undefined) expect(() => durationMs(value)).not.toThrow();
      }
      const test = svc.healthcheck.test;
      expect(Array.isArray(test) && ['CMD', 'CMD-SHELL', 'NONE'].includes(String(test[0]))).toBe(true);
    }
  });

  it('declares every named volume a service mounts', () => {
    const declared = Object.keys(dict(compose.volumes ?? {}, 'volumes'));
    for (const [name, value] of Object.entries(services)) {
      const volumes = (dict(value, name).volumes ?? []) as unknown[];
      for (const volume of volumes) {
        const source = String(volume).split(':')[0];
        if (!/^[./~]/.test(source)) expect(declared).toContain(source);
      }
    }
  });

  it('runs redis with AOF on a named volume and a ping healthcheck', () => {
    const redis = service('redis');
    expect(String(redis.image)).toMatch(/^redis:7/);
    expect((redis.command as string[]).join(' ')).toContain('--appendonly yes');
    expect((redis.volumes as string[]).some((v) => /^[A-Za-z0-9_.-]+:\/data$/.test(v))).toBe(true);
    expect(JSON.stringify(dict(redis.healthcheck, 'redis.healthcheck').test)).toContain('redis-cli ping');
  });

  it('gates gateway and worker start on a healthy redis', () => {
    for (const name of ['gateway', 'worker']) {
      expect(dict(service(name).depends_on, `${name}.depends_on`).redis).toEqual({ condition: 'service_healthy' });
    }
  });

  it('runs at least two replicas of gateway and worker, reachable only through the lb', () => {
    for (const name of ['gateway', 'worker']) {
      const svc = service(name);
      expect(Number(dict(svc.deploy, 'deploy').replicas)).toBeGreaterThanOrEqual(2);
      // Replicas would fight over a fixed container name or host port.
      expect(svc.container_name).toBeUndefined();
      expect(svc.ports).toBeUndefined();
    }
  });
});

describe('environment of the app services', () => {
  it('env DTOs expose every variable as an own property, REDIS_URL (declared with !) included', () => {
    // With target ES2022 class fields are defined even without an initializer; loadConfig
    // relies on Object.keys(new dto()) in the same way.
    for (const instance of [new GatewayEnv(), new WorkerEnv()]) {
      expect(Object.prototype.hasOwnProperty.call(instance, 'REDIS_URL')).toBe(true);
      expect(Object.keys(instance)).toEqual(expect.arrayContaining(['REDIS_URL', 'PORT', 'LOG_LEVEL']));
    }
    expect(Object.keys(new GatewayEnv())).toEqual(expect.arrayContaining(['JWT_SECRET', 'SERVER_ID', 'DRAIN_TIMEOUT_MS']));
    expect(Object.keys(new WorkerEnv())).toEqual(expect.arrayContaining(['WORKER_ID', 'SHUTDOWN_TIMEOUT_MS']));
  });

  it('sets only variables the env DTOs declare', () => {
    const declared = { gateway: Object.keys(new GatewayEnv()), worker: Object.keys(new WorkerEnv()) };
    for (const [name, keys] of Object.entries(declared)) {
      const unknown = Object.keys(environmentOf(service(name))).filter((key) => !keys.includes(key));
      expect({ service: name, unknown }).toEqual({ service: name, unknown: [] });
    }
  });

  it('sets the variables that have no usable default', () => {
    expect(Object.keys(environmentOf(service('gateway')))).toEqual(expect.arrayContaining(['REDIS_URL', 'JWT_SECRET']));
    expect(Object.keys(environmentOf(service('worker')))).toContain('REDIS_URL');
  });

  it.each([
    ['no operator variables (dev defaults)', NO_ENV],
    ['operator-provided variables', OPERATOR_ENV],
  ])('loads through the real config loaders with %s', (_label, env) => {
    const deployed = dict(loadCompose(env).services, 'services');
    const gatewayEnv = environmentOf(dict(deployed.gateway, 'gateway'));
    const workerEnv = environmentOf(dict(deployed.worker, 'worker'));

    const gateway = loadGatewayConfig(gatewayEnv);
    const worker = loadWorkerConfig(workerEnv);

    expect(gateway.redisUrl).toBe('redis://redis:6379');
    expect(worker.redisUrl).toBe(gateway.redisUrl);
    expect(worker.retention).toEqual(gateway.retention);
    expect(worker.logLevel).toBe(gateway.logLevel);
    if (env === OPERATOR_ENV) {
      // The compose file passes the operator's variables through under the same names.
      expect(gateway.jwt.secret).toBe(OPERATOR_ENV.JWT_SECRET);
      expect(gateway.apiKeys).toEqual(OPERATOR_ENV.API_KEYS?.split(','));
      expect(gateway.corsOrigins).toEqual([OPERATOR_ENV.CORS_ORIGINS]);
      expect(gateway.logLevel).toBe('debug');
    }
  });

  it('runs the gateways WebSocket-only, since the lb balances without sticky sessions', () => {
    expect(loadGatewayConfig(environmentOf(service('gateway'))).transports).toEqual(['websocket']);
    expect(read('deploy/nginx.conf')).not.toMatch(/^\s*(ip_hash|sticky|hash\s)/m);
  });

  it('gives each app longer to stop than its own drain or shutdown deadline', () => {
    const gateway = loadGatewayConfig(environmentOf(service('gateway')));
    const worker = loadWorkerConfig(environmentOf(service('worker')));
    // Room to close Redis connections and the HTTP server after the deadline.
    const margin = 5_000;
    expect(durationMs(service('gateway').stop_grace_period)).toBeGreaterThanOrEqual(gateway.drain.timeoutMs + margin);
    expect(durationMs(service('worker').stop_grace_period)).toBeGreaterThanOrEqual(worker.shutdownTimeoutMs + margin);
  });

  it('probes /readyz on the port each app listens on, with node (present in the image)', () => {
    const ports = {
      gateway: loadGatewayConfig(environmentOf(service('gateway'))).port,
      worker: loadWorkerConfig(environmentOf(service('worker'))).port,
    };
    for (const [name, port] of Object.entries(ports)) {
      const test = dict(service(name).healthcheck, `${name}.healthcheck`).test as string[];
      expect(test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
      expect(test[3]).toContain(`http://127.0.0.1:${port}/readyz`);
      expect(test[3]).toContain('process.exit(r.ok?0:1)');
    }
  });
});

describe('load balancer', () => {
  const lb = service('lb');
  const mount = ((lb.volumes ?? []) as string[]).map((v) => v.split(':')).find(([, target]) => target?.startsWith('/etc/nginx/'));
  const configPath = mount ? normalize(mount[0]) : '';
  const config = mount && existsSync(join(ROOT, configPath)) ? read(configPath) : '';

  it('mounts a config file that exists in the repo', () => {
    expect(mount).toBeDefined();
    expect(configPath.startsWith('deploy/')).toBe(true);
    expect(existsSync(join(ROOT, configPath))).toBe(true);
  });

  it('proxies HTTP/1.1 with the WebSocket upgrade headers and long socket timeouts', () => {
    expect(config).toMatch(/^\s*proxy_http_version 1\.1;/m);
    expect(config).toMatch(/^\s*proxy_set_header Upgrade \$http_upgrade;/m);
    expect(config).toMatch(/^\s*proxy_set_header Connection \$connection_upgrade;/m);
    expect(config).toMatch(/map \$http_upgrade \$connection_upgrade \{[^}]*default\s+upgrade;/);
    const readTimeout = /^\s*proxy_read_timeout (\d+)s;/m.exec(config);
    // Longer than the largest HEARTBEAT_MS the gateway accepts, or quiet sockets get cut.
    expect(Number(readTimeout?.[1]) * 1000).toBeGreaterThan(300_000);
  });

  it('balances over the gateway service through Docker DNS on the port the gateways listen on', () => {
    const gatewayPort = loadGatewayConfig(environmentOf(service('gateway'))).port;
    expect(config).toMatch(/^\s*resolver 127\.0\.0\.11\b/m);
    const upstream = /upstream (\w+) \{([^}]*)\}/.exec(config);
    expect(upstream).not.toBeNull();
    expect(config).toMatch(new RegExp(`proxy_pass http://${upstream?.[1]};`));
    const server = /^\s*server ([\w.-]+):(\d+)([^;]*);/m.exec(upstream?.[2] ?? '');
    expect(server?.[1]).toBe('gateway');
    expect(Number(server?.[2])).toBe(gatewayPort);
    // `resolve` follows replicas as they come and go; it needs the peers in a shared zone.
    expect(server?.[3]).toContain('resolve');
    expect(upstream?.[2]).toMatch(/^\s*zone \w+ \w+;/m);
  });

  it('publishes host port 8080 onto the port nginx listens on', () => {
    const ports = (lb.ports ?? []) as string[];
    const published = ports.map((p) => p.split(':')).find((parts) => parts.at(-2) === '8080');
    expect(published).toBeDefined();
    expect(config).toMatch(new RegExp(`^\\s*listen ${published?.at(-1)};`, 'm'));
    // `resolve` in an upstream needs open-source nginx 1.27.3 or newer.
    const [major, minor, patch] = (/^nginx:(\d+)\.(\d+)\.(\d+)/.exec(String(lb.image)) ?? []).slice(1).map(Number);
    expect(major * 1e6 + minor * 1e3 + patch).toBeGreaterThanOrEqual(1_027_003);
  });
});

// ---------------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions grouped by stage (continuations joined, comments dropped). */
function dockerfileStages(text: string): Array<{ name: string; from: string; instructions: Instruction[] }> {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'));
  const globalArgs: Record<string, string> = {};
  const stages: Array<{ name: string; from: string; instructions: Instruction[] }> = [];
  for (const line of lines) {
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const instruction = { keyword: keyword.toUpperCase(), args };
    if (instruction.keyword === 'FROM') {
      const [image, , name] = args.replace(/\$\{(\w+)\}/g, (_m, arg: string) => globalArgs[arg] ?? '').split(/\s+/);
      stages.push({ name: name ?? String(stages.length), from: image, instructions: [] });
    } else if (stages.length === 0 && instruction.keyword === 'ARG') {
      const [arg, value = ''] = args.split('=');
      globalArgs[arg] = value;
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** Where `npm run build` writes an app's bundle, per nest-cli.json and its tsconfig.app.json. */
function builtEntry(app: string): string {
  const nest = JSON.parse(read('nest-cli.json')) as { projects: Record<string, { entryFile: string; compilerOptions: { tsConfigPath: string } }> };
  const project = nest.projects[app];
  const tsconfig = JSON.parse(read(project.compilerOptions.tsConfigPath)) as { compilerOptions: { outDir: string } };
  return normalize(join(dirname(project.compilerOptions.tsConfigPath), tsconfig.compilerOptions.outDir, `${project.entryFile}.js`));
}

describe('Dockerfile', () => {
  const stages = dockerfileStages(read('Dockerfile'));
  const build = stages[0];
  const runtime = stages.at(-1)!;
  const runs = (stage: typeof build) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);

  it('builds in one stage and runs from another, on Node images that satisfy engines.node', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    const minimum = Number(/(\d+)/.exec(engines)?.[1]);
    for (const stage of [build, runtime]) {
      const major = Number(/^node:(\d+)/.exec(stage.from)?.[1]);
      expect(major).toBeGreaterThanOrEqual(minimum);
    }
    expect(runs(build).some((r) => /\bnpm ci\b/.test(r) && !r.includes('--omit=dev'))).toBe(true);
    expect(runs(build).some((r) => /\bnpm run build\b/.test(r))).toBe(true);
  });

  it('installs only production dependencies in the runtime stage, with NODE_ENV=production', () => {
    expect(runs(runtime).some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    expect(runtime.instructions.some((i) => i.keyword === 'ENV' && /\bNODE_ENV=production\b/.test(i.args))).toBe(true);
    expect(runtime.instructions.some((i) => i.keyword === 'COPY' && i.args.includes(`--from=${build.name}`) && /\bdist\b/.test(i.args))).toBe(true);
  });

  it('runs as a non-root user and leaves healthchecks to compose', () => {
    const user = runtime.instructions
      .filter((i) => i.keyword === 'USER')
      .at(-1)
      ?.args.split(':')[0];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(runtime.instructions.some((i) => i.keyword === 'HEALTHCHECK')).toBe(false);
  });

  it('starts, by default and from compose, files the build produces', () => {
    expect(builtEntry('gateway')).toBe('dist/apps/gateway/main.js');
    expect(builtEntry('worker')).toBe('dist/apps/worker/main.js');
    const cmd = runtime.instructions.find((i) => i.keyword === 'CMD');
    expect(JSON.parse(cmd?.args ?? 'null')).toEqual(['node', builtEntry('gateway')]);
    for (const app of ['gateway', 'worker']) {
      expect(service(app).command).toEqual(['node', builtEntry(app)]);
      expect(dict(service(app).build, `${app}.build`).context).toBe('.');
    }
  });

  it('copies sources that exist and that .dockerignore lets through, and keeps host builds out', () => {
    const ignored = read('.dockerignore')
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.length > 0 && !line.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist', '.git']));
    const sources = build.instructions
      .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))
      .flatMap((i) =>
        i.args
          .split(/\s+/)
          .filter((word) => !word.startsWith('--'))
          .slice(0, -1),
      );
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect({ source, exists: existsSync(join(ROOT, source)) }).toEqual({ source, exists: true });
      expect({ source, ignored: ignored.includes(source) }).toEqual({ source, ignored: false });
    }
  });
});
