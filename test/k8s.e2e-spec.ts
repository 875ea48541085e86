import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Deployment, type IDeployment, type IStatefulSet, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler, type IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { type IPodDisruptionBudget, PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, type IConfigMap, type IContainer, type IService, Service } from 'kubernetes-models/v1';
import * as ts from 'typescript';
import { ConfigError } from '@app/runtime';
import { loadGatewayConfig } from '../apps/gateway/src/config/gateway-config';
import { GatewayEnv } from '../apps/gateway/src/config/gateway.env';
import { GatewayMetrics } from '../apps/gateway/src/metrics/gateway-metrics';
import { loadWorkerConfig, WorkerEnv } from '../apps/worker/src/config/worker-config';
import { type K8sObject, kustomize } from './support/kustomize';

/**
 * Keeps deploy/k8s honest without a cluster, kubectl or kustomize: every overlay is rendered
 * by test/support/kustomize.ts, each object is validated by kubernetes-models (the
 * Kubernetes OpenAPI schema) plus a check for unknown fields, and the result is checked
 * against the apps themselves: env DTOs, real config loaders, health endpoints, drain
 * deadlines and the Prometheus gauge the autoscaler reads.
 */

const ROOT = join(__dirname, '..');
const K8S = join(ROOT, 'deploy/k8s');
const OVERLAYS = ['redis-single', 'redis-cluster', 'production'] as const;
type Overlay = (typeof OVERLAYS)[number];
const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, kustomize(join(K8S, 'overlays', o))])) as Record<Overlay, K8sObject[]>;

/** The Secret an operator creates (deploy/k8s/README.md); the test supplies its values. */
const SECRETS: Record<string, Record<string, string>> = {
  'realtime-gateway-secrets': { JWT_SECRET: 'k8s-test-secret-0123456789abcdef', API_KEYS: 'k8s-test-key-0123456789,k8s-test-key-abcdefghij' },
};
const POD_NAME = 'gateway-7d9f8c6b5-x2x7q';

// Measured figures the gateway's resources are derived from (deploy/k8s/README.md, Sizing).
const DESIGN_SOCKETS = 10_000;
const IDLE_PROCESS_BYTES = 112 * 2 ** 20;
const BYTES_PER_IDLE_SOCKET = 23 * 1024;

// ---------------------------------------------------------------------------------------
// Schema checks. kubernetes-models checks types, enums and required fields but lets
// unknown fields through (`readinesProbe` would pass). Its .d.ts interfaces, generated from
// the same OpenAPI schema, list every field: walk each object against them with the
// TypeScript checker.

type ModelClass = new (data?: never) => { validate(): void };
const MODELS: Record<string, ModelClass> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};
const MODELS_DIR = dirname(require.resolve('kubernetes-models/package.json'));
const declarationFile = (model: string): string => join(MODELS_DIR, `${model}.d.ts`);
let schema: { program: ts.Program; checker: ts.TypeChecker } | undefined;

function unknownFields(object: K8sObject): string[] {
  const model = `${object.apiVersion}/${object.kind}`;
  if (!schema) {
    const program = ts.createProgram(Object.keys(MODELS).map(declarationFile), {
      noEmit: true,
      strict: true,
      skipLibCheck: true,
      types: [],
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
    });
    schema = { program, checker: program.getTypeChecker() };
  }
  const { program, checker } = schema;
  const declaration = program
    .getSourceFile(declarationFile(model))
    ?.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === `I${object.kind}`);
  if (!declaration) throw new Error(`no declaration for ${model}`);
  const problems: string[] = [];
  const walk = (value: unknown, declared: ts.Type, path: string): void => {
    const type = checker.getNonNullableType(declared);
    if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
    if (Array.isArray(value)) {
      const item = checker.getIndexTypeOfType(type, ts.IndexKind.Number);
      if (!item) problems.push(`${path} (a list where the schema has none)`);
      else value.forEach((v, i) => walk(v, item, `${path}[${i}]`));
      return;
    }
    if (typeof value !== 'object' || value === null) return; // scalar types: validate()'s job
    const candidates = type.isUnion() ? type.types : [type];
    for (const [key, child] of Object.entries(value)) {
      const field = candidates
        .map((c) => {
          const property = c.getProperty(key);
          return property ? checker.getTypeOfSymbol(property) : checker.getIndexTypeOfType(c, ts.IndexKind.String);
        })
        .find((t) => t !== undefined);
      if (field) walk(child, field, `${path}.${key}`);
      else problems.push(`${path}.${key}`);
    }
  };
  walk(object, checker.getTypeAtLocation(declaration), `${object.kind}/${object.metadata.name}`);
  return problems;
}

// ---------------------------------------------------------------------------------------
// Reading rendered objects.

function find<T>(objects: K8sObject[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} rendered`);
  return found as unknown as T;
}
const ofKind = <T>(objects: K8sObject[], kind: string): T[] => objects.filter((o) => o.kind === kind) as unknown as T[];
const workloads = (objects: K8sObject[]): Array<IDeployment | IStatefulSet> => [
  ...ofKind<IDeployment>(objects, 'Deployment'),
  ...ofKind<IStatefulSet>(objects, 'StatefulSet'),
];

type Role = 'gateway' | 'worker';
const ROLES: Role[] = ['gateway', 'worker'];
const deployment = (objects: K8sObject[], role: Role) => find<IDeployment>(objects, 'Deployment', role);
const container = (objects: K8sObject[], role: Role): IContainer => {
  const found = deployment(objects, role).spec?.template.spec?.containers.find((c) => c.name === role);
  if (!found) throw new Error(`no ${role} container`);
  return found;
};
const selects = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);
const containerPort = (c: IContainer, port: number | string | undefined): number | undefined =>
  typeof port === 'number' ? port : c.ports?.find((p) => p.name === port)?.containerPort;

/** Variable names a container gets: its ConfigMaps' keys (envFrom) and its `env`. */
function envNames(objects: K8sObject[], c: IContainer): string[] {
  const fromConfigMaps = (c.envFrom ?? []).flatMap((source) => {
    if (!source.configMapRef || Object.keys(source).length !== 1) throw new Error(`unsupported envFrom ${JSON.stringify(source)}`);
    return Object.keys(find<IConfigMap>(objects, 'ConfigMap', source.configMapRef.name ?? '').data ?? {});
  });
  return [...fromConfigMaps, ...(c.env ?? []).map((e) => e.name)];
}

/** The environment the kubelet would give the container (`env` wins over `envFrom`). */
function resolveEnv(objects: K8sObject[], role: Role): Record<string, string> {
  const c = container(objects, role);
  const env: Record<string, string> = {};
  for (const source of c.envFrom ?? []) Object.assign(env, find<IConfigMap>(objects, 'ConfigMap', source.configMapRef?.name ?? '').data);
  for (const { name, value, valueFrom } of c.env ?? []) {
    if (value !== undefined && !value.includes('$(')) env[name] = value;
    else if (valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[name] = POD_NAME;
    else if (valueFrom?.secretKeyRef) {
      const secret = SECRETS[valueFrom.secretKeyRef.name ?? '']?.[valueFrom.secretKeyRef.key];
      if (secret === undefined) throw new Error(`${name}: the documented Secret has no ${JSON.stringify(valueFrom.secretKeyRef)}`);
      env[name] = secret;
    } else throw new Error(`${name}: unsupported value ${JSON.stringify({ value, valueFrom })}`);
  }
  return env;
}

// REDIS_CLUSTER_NODES (host:port,host:port instead of REDIS_URL) is being added to the env
// DTOs in a parallel change. Until BackplaneEnv declares it, the name is allowed here and
// the loaders are expected to refuse only the then-missing REDIS_URL.
// TODO: remove PENDING_ENV and the `pending` branches once REDIS_CLUSTER_NODES is in BackplaneEnv.
const PENDING_ENV = ['REDIS_CLUSTER_NODES'];
const DECLARED: Record<Role, string[]> = { gateway: Object.keys(new GatewayEnv()), worker: Object.keys(new WorkerEnv()) };
const pending = (role: Role, env: Record<string, string>): boolean => env.REDIS_URL === undefined && !DECLARED[role].includes('REDIS_CLUSTER_NODES');

/** The role's config from its real loader (a placeholder REDIS_URL while `pending`). */
function loaderInput(objects: K8sObject[], role: Role): Record<string, string> {
  const env = resolveEnv(objects, role);
  return pending(role, env) ? { ...env, REDIS_URL: 'redis://pending-cluster-support:6379' } : env;
}
const gatewayConfig = (objects: K8sObject[]) => loadGatewayConfig(loaderInput(objects, 'gateway'));
const workerConfig = (objects: K8sObject[]) => loadWorkerConfig(loaderInput(objects, 'worker'));
/** What the probes and the grace period depend on: the listen port and the drain deadline. */
function configOf(objects: K8sObject[], role: Role): { port: number; deadlineMs: number } {
  if (role === 'worker') {
    const config = workerConfig(objects);
    return { port: config.port, deadlineMs: config.shutdownTimeoutMs };
  }
  const config = gatewayConfig(objects);
  return { port: config.port, deadlineMs: config.drain.timeoutMs };
}

function configProblems(load: () => unknown): string[] {
  try {
    load();
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

/** Kubernetes quantities of the forms used here ("500m", "1", "384Mi", "1Gi"). */
function quantity(value: string | number | undefined): number {
  const match = /^(\d+(?:\.\d+)?)(m|Mi|Gi)?$/.exec(String(value));
  if (!match) throw new Error(`unsupported quantity ${value}`);
  const unit: Record<string, number> = { m: 0.001, Mi: 2 ** 20, Gi: 2 ** 30, '': 1 };
  return Number(match[1]) * unit[match[2] ?? ''];
}

const preStopMs = (c: IContainer): number => {
  const command = c.lifecycle?.preStop?.exec?.command;
  if (!c.lifecycle?.preStop) return 0;
  if (command?.length !== 2 || command[0] !== 'sleep' || !/^\d+$/.test(command[1])) throw new Error(`unsupported preStop ${JSON.stringify(c.lifecycle)}`);
  return Number(command[1]) * 1000;
};

// ---------------------------------------------------------------------------------------

describe('test kustomize renderer', () => {
  const dirs: string[] = [];
  const tree = (files: Record<string, string>): string => {
    const dir = mkdtempSync(join(tmpdir(), 'rtgw-kustomize-'));
    dirs.push(dir);
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    return dir;
  };
  afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
  const KUSTOMIZATION = 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n';
  const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec:
      containers:
        - {name: app, image: "localhost:5000/app:old", command: [a, b], env: [{name: A, value: "1"}, {name: B, value: "2"}]}
        - {name: side, image: other}
`;

  it('merges containers and env by name, replaces command, then applies images', () => {
    const dir = tree({
      'base/kustomization.yaml': `${KUSTOMIZATION}resources: [app.yaml]\n`,
      'base/app.yaml': DEPLOYMENT,
      'overlay/kustomization.yaml': `${KUSTOMIZATION}resources: [../base]\npatches: [{path: patch.yaml}]\nimages: [{name: "localhost:5000/app", newTag: new}]\n`,
      'overlay/patch.yaml':
        'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  template:\n    spec:\n      containers:\n        - {name: app, command: [c], env: [{name: B, value: "3"}, {name: C, value: "4"}]}\n',
    });
    const [app] = kustomize(join(dir, 'overlay')) as unknown as IDeployment[];
    const containers = app.spec?.template.spec?.containers ?? [];
    expect(containers.map((c) => [c.name, c.image, c.command])).toEqual([
      ['app', 'localhost:5000/app:new', ['c']],
      ['side', 'other', undefined],
    ]);
    expect(containers[0].env).toEqual([
      { name: 'A', value: '1' },
      { name: 'B', value: '3' },
      { name: 'C', value: '4' },
    ]);
  });

  const withPatch = (patch: string) => ({
    'k/kustomization.yaml': `${KUSTOMIZATION}resources: [app.yaml]\npatches: [{path: p.yaml}]\n`,
    'k/app.yaml': DEPLOYMENT,
    'k/p.yaml': `apiVersion: apps/v1\nkind: Deployment\n${patch}`,
  });
  it.each([
    ['an unsupported kustomization field', { 'k/kustomization.yaml': `${KUSTOMIZATION}namePrefix: x-\n` }, 'unsupported field(s): namePrefix'],
    ['a list without a known merge strategy', withPatch('metadata: {name: app}\nspec: {template: {spec: {volumes: []}}}\n'), 'unknown merge strategy'],
    ['a patch without a target', withPatch('metadata: {name: nope}\n'), 'matches 0 resources'],
    ['a file outside the kustomization', { 'k/kustomization.yaml': `${KUSTOMIZATION}resources: [../app.yaml]\n`, 'app.yaml': DEPLOYMENT }, 'is outside'],
    [
      'two resources with one id',
      { 'k/kustomization.yaml': `${KUSTOMIZATION}resources: [a.yaml, b.yaml]\n`, 'k/a.yaml': DEPLOYMENT, 'k/b.yaml': DEPLOYMENT },
      'two resources with the id',
    ],
  ])('refuses %s', (_label, files, message) => {
    expect(() => kustomize(join(tree(files), 'k'))).toThrow(message);
  });

  it('lets the unknown-field check catch a typo that kubernetes-models accepts', () => {
    const typo = structuredClone(find<K8sObject>(rendered['redis-single'], 'Deployment', 'gateway'));
    const pod = (typo.spec as { template: { spec: { containers: Array<Record<string, unknown>> } } }).template.spec;
    pod.containers[0].readinesProbe = { httpGet: { path: '/readyz', port: 3000 } };
    expect(() => new Deployment(typo as never).validate()).not.toThrow();
    expect(unknownFields(typo)).toEqual(['Deployment/gateway.spec.template.spec.containers[0].readinesProbe']);
  });
});

describe.each(OVERLAYS)('deploy/k8s/overlays/%s', (overlay) => {
  const objects = rendered[overlay];

  it('renders the gateway, the worker and what they need, each once', () => {
    const ids = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(ids).toEqual(
      expect.arrayContaining([
        'ConfigMap/realtime-backplane',
        'Deployment/gateway',
        'Service/gateway',
        'HorizontalPodAutoscaler/gateway',
        'PodDisruptionBudget/gateway',
        'Deployment/worker',
        'HorizontalPodAutoscaler/worker',
        'PodDisruptionBudget/worker',
      ]),
    );
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('passes the Kubernetes schema (kubernetes-models) and uses no unknown field', () => {
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      if (!Model) throw new Error(`no kubernetes-models class listed for ${object.apiVersion} ${object.kind}`);
      expect(() => new Model(object as never).validate()).not.toThrow();
      expect(unknownFields(object)).toEqual([]);
    }
  });

  it('sets only variables the env DTOs declare', () => {
    for (const role of ROLES) {
      const unknown = envNames(objects, container(objects, role)).filter((name) => !DECLARED[role].includes(name) && !PENDING_ENV.includes(name));
      expect({ role, unknown }).toEqual({ role, unknown: [] });
    }
  });

  it('loads through the real config loaders, with the Secret supplied', () => {
    for (const role of ROLES) {
      const env = resolveEnv(objects, role);
      const load = () => (role === 'gateway' ? loadGatewayConfig(env) : loadWorkerConfig(env));
      if (pending(role, env)) {
        // Before REDIS_CLUSTER_NODES lands, the only complaint may be the missing REDIS_URL.
        expect(configProblems(load)).toEqual([expect.stringMatching(/^REDIS_URL: /)]);
        continue;
      }
      expect(configProblems(load)).toEqual([]);
      // One Redis, or the cluster (as a redis+cluster:// URL) of the seed nodes given.
      expect(load().redisUrl.replace(/^redis\+cluster:\/\//, '')).toBe(env.REDIS_URL ?? env.REDIS_CLUSTER_NODES);
    }
    const gateway = gatewayConfig(objects);
    const worker = workerConfig(objects);
    expect(gateway.jwt.secret).toBe(SECRETS['realtime-gateway-secrets'].JWT_SECRET);
    expect(gateway.apiKeys).toEqual(SECRETS['realtime-gateway-secrets'].API_KEYS.split(','));
    expect([gateway.serverId, worker.workerId]).toEqual([POD_NAME, POD_NAME]);
    // Both roles publish: they must agree on Redis and on the retention policy.
    expect(worker.redisUrl).toBe(gateway.redisUrl);
    expect(worker.retention).toEqual(gateway.retention);
    expect(worker.logLevel).toBe(gateway.logLevel);
  });

  it('runs the gateways WebSocket-only behind a Service without session affinity', () => {
    expect(resolveEnv(objects, 'gateway').TRANSPORTS).toBe('websocket');
    expect(gatewayConfig(objects).transports).toEqual(['websocket']);
    const service = find<IService>(objects, 'Service', 'gateway');
    expect(service.spec?.sessionAffinity ?? 'None').toBe('None');
    const pods = (role: Role) => deployment(objects, role).spec?.template.metadata?.labels;
    expect(selects(service.spec?.selector, pods('gateway'))).toBe(true);
    expect(selects(service.spec?.selector, pods('worker'))).toBe(false);
    for (const port of service.spec?.ports ?? []) {
      expect(containerPort(container(objects, 'gateway'), port.targetPort)).toBe(configOf(objects, 'gateway').port);
    }
  });

  it('probes /healthz (startup, liveness) and /readyz (readiness) on the port each app listens on', () => {
    for (const role of ROLES) {
      const c = container(objects, role);
      const { port } = configOf(objects, role);
      expect(c.ports?.map((p) => p.containerPort)).toContain(port);
      const probes = [
        [c.startupProbe, '/healthz'],
        [c.livenessProbe, '/healthz'],
        [c.readinessProbe, '/readyz'],
      ] as const;
      for (const [probe, path] of probes) {
        expect({ role, path: probe?.httpGet?.path, port: containerPort(c, probe?.httpGet?.port) }).toEqual({ role, path, port });
      }
      const annotations = deployment(objects, role).spec?.template.metadata?.annotations ?? {};
      expect(annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' });
    }
  });

  it('gives each pod longer to stop than its preStop pause plus its drain deadline', () => {
    // Room to close Redis connections and the HTTP server after the deadline.
    const margin = 5_000;
    for (const role of ROLES) {
      const graceMs = (deployment(objects, role).spec?.template.spec?.terminationGracePeriodSeconds ?? 30) * 1000;
      const needed = preStopMs(container(objects, role)) + configOf(objects, role).deadlineMs + margin;
      expect({ role, graceMs, needed, enough: graceMs > needed }).toMatchObject({ role, enough: true });
    }
    // The gateway pauses before SIGTERM so endpoints are gone before it refuses handshakes.
    expect(preStopMs(container(objects, 'gateway'))).toBeGreaterThanOrEqual(3_000);
  });

  it('points every autoscaler at a rendered Deployment; the gateway on its socket gauge, then CPU', () => {
    for (const hpa of ofKind<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler')) {
      const ref = hpa.spec?.scaleTargetRef;
      const target = find<IDeployment>(objects, ref?.kind ?? '', ref?.name ?? '');
      expect(target.apiVersion).toBe(ref?.apiVersion);
      // Two at least, so a draining pod's sockets or jobs always have somewhere to go.
      expect(hpa.spec?.minReplicas).toBeGreaterThanOrEqual(2);
      expect(hpa.spec?.maxReplicas).toBeGreaterThan(hpa.spec?.minReplicas ?? 0);
    }
    const gateway = find<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler', 'gateway').spec?.metrics ?? [];
    expect(gateway.map((m) => m.type)).toEqual(['Pods', 'Resource']);
    const sockets = gateway[0].pods;
    const metrics = new GatewayMetrics();
    expect(metrics.registry.getSingleMetric(sockets?.metric.name ?? '')).toBe(metrics.sockets);
    expect(sockets?.target.type).toBe('AverageValue');
    expect(quantity(sockets?.target.averageValue)).toBeLessThan(DESIGN_SOCKETS);
    expect(gateway[1].resource).toMatchObject({ name: 'cpu', target: { type: 'Utilization' } });
    const worker = find<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler', 'worker').spec?.metrics ?? [];
    expect(worker.map((m) => m.resource?.name)).toEqual(['cpu']);
  });

  it('has disruption budgets whose selectors match exactly one workload, and selectors that match their pods', () => {
    for (const w of workloads(objects)) expect(selects(w.spec?.selector.matchLabels, w.spec?.template.metadata?.labels)).toBe(true);
    for (const role of ROLES) {
      const pdb = find<IPodDisruptionBudget>(objects, 'PodDisruptionBudget', role);
      const matched = workloads(objects).filter((w) => selects(pdb.spec?.selector?.matchLabels, w.spec?.template.metadata?.labels));
      expect(matched.map((w) => w.metadata?.name)).toEqual([role]);
      expect(pdb.spec?.maxUnavailable).toBe(1);
    }
  });

  it('runs every container as non-root, read-only, without privileges or capabilities', () => {
    for (const w of workloads(objects)) {
      const pod = w.spec?.template.spec;
      expect(pod?.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod?.securityContext?.runAsUser).toBeGreaterThan(0);
      expect(pod?.automountServiceAccountToken).toBe(false);
      for (const c of pod?.containers ?? []) {
        expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      }
    }
  });

  it('sizes the app containers: requests within limits, the gateway for its design socket count', () => {
    for (const role of ROLES) {
      const { requests = {}, limits = {} } = container(objects, role).resources ?? {};
      for (const resource of ['cpu', 'memory']) expect(quantity(requests[resource])).toBeLessThanOrEqual(quantity(limits[resource]));
    }
    const gateway = container(objects, 'gateway').resources;
    expect(quantity(gateway?.requests?.memory)).toBeGreaterThanOrEqual(IDLE_PROCESS_BYTES + DESIGN_SOCKETS * BYTES_PER_IDLE_SOCKET);
  });

  it('runs both roles from the one image, the entry points the build produces', () => {
    const images = ROLES.map((role) => container(objects, role).image);
    expect(images[0]).toBe(images[1]);
    expect(images[0]).toBe(overlay === 'production' ? 'registry.example.com/realtime-gateway:0.1.0' : 'realtime-gateway:0.1.0');
    expect(container(objects, 'gateway').command).toEqual(['node', 'dist/apps/gateway/main.js']);
    expect(container(objects, 'worker').command).toEqual(['node', 'dist/apps/worker/main.js']);
  });
});

describe('overlay specifics', () => {
  const backplane = (overlay: Overlay) => find<IConfigMap>(rendered[overlay], 'ConfigMap', 'realtime-backplane').data ?? {};

  it('redis-single runs one Redis with AOF and noeviction behind the `redis` Service it points at', () => {
    const objects = rendered['redis-single'];
    expect(backplane('redis-single').REDIS_URL).toBe('redis://redis:6379');
    const redis = find<IStatefulSet>(objects, 'StatefulSet', 'redis');
    const args = redis.spec?.template.spec?.containers[0].args?.join(' ');
    expect(args).toContain('--appendonly yes');
    expect(args).toContain('--maxmemory-policy noeviction');
    const service = find<IService>(objects, 'Service', 'redis');
    expect(redis.spec?.serviceName).toBe('redis');
    expect(selects(service.spec?.selector, redis.spec?.template.metadata?.labels)).toBe(true);
    expect(service.spec?.ports?.map((p) => p.port)).toEqual([6379]);
  });

  it('redis-cluster names cluster seed nodes instead of REDIS_URL', () => {
    const data = backplane('redis-cluster');
    expect(data.REDIS_URL).toBeUndefined();
    expect(data.REDIS_CLUSTER_NODES?.split(',')).toEqual([
      'redis-cluster-0.redis-cluster:6379',
      'redis-cluster-1.redis-cluster:6379',
      'redis-cluster-2.redis-cluster:6379',
    ]);
    expect(rendered['redis-cluster'].some((o) => o.kind === 'StatefulSet')).toBe(false);
  });

  it('production moves everything into its namespace and keeps the base env when adding its own', () => {
    const objects = rendered.production;
    expect(new Set(objects.map((o) => o.metadata.namespace))).toEqual(new Set(['realtime']));
    expect(objects.every((o) => o.metadata.labels?.['app.kubernetes.io/part-of'] === 'realtime-gateway')).toBe(true);
    const names = container(objects, 'gateway').env?.map((e) => e.name);
    expect(names).toEqual([...(container(rendered['redis-cluster'], 'gateway').env ?? []).map((e) => e.name), 'CORS_ORIGINS']);
    expect(resolveEnv(objects, 'gateway').CORS_ORIGINS).toBe('https://dashboard.example.com');
    expect(find<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler', 'gateway').spec?.minReplicas).toBe(3);
  });
});

describe('deploy/k8s/README.md', () => {
  const readme = readFileSync(join(K8S, 'README.md'), 'utf8');

  it('documents the apply command, the Secret and every key the manifests read from it', () => {
    expect(readme).toContain('kubectl apply -k deploy/k8s/overlays/redis-single');
    const refs = OVERLAYS.flatMap((o) => ROLES.flatMap((role) => container(rendered[o], role).env ?? [])).flatMap((e) =>
      e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef] : [],
    );
    expect(new Set(refs.map((r) => r.name))).toEqual(new Set(['realtime-gateway-secrets']));
    expect(readme).toContain('kubectl create secret generic realtime-gateway-secrets');
    for (const { key } of refs) expect(readme).toContain(`--from-literal=${key}=`);
  });

  it('gives a prometheus-adapter rule for the metric the gateway HPA reads', () => {
    const metric = find<IHorizontalPodAutoscaler>(rendered['redis-single'], 'HorizontalPodAutoscaler', 'gateway').spec?.metrics?.[0].pods?.metric.name;
    expect(readme).toContain(`seriesQuery: '${metric}{namespace!="",pod!=""}'`);
  });
});
