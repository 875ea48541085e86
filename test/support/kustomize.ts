import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/**
 * A small kustomize for tests, so `deploy/k8s` can be rendered where no kustomize or kubectl
 * is installed. It implements only what the manifests in deploy/k8s use, the way kustomize
 * v5 does it, and throws on anything else: a new field in a kustomization.yaml must come with
 * support here (and a test of it) instead of being silently ignored.
 *
 * Supported kustomization fields:
 * - `resources`: YAML files inside the kustomization's directory (kustomize's default load
 *   restrictor) and directories holding a kustomization.yaml (built first, recursively);
 * - `patches` with `path` only: strategic-merge patches, target found by the patch's
 *   apiVersion, kind and name; maps merge, `containers`/`initContainers`/`env` merge by
 *   `name`, `command`/`args` are replaced, any other list throws;
 * - `namespace`, for the namespaced kinds listed below;
 * - `labels` with `pairs` and `includeTemplates` (never `includeSelectors`);
 * - `images` with `name`, `newName`, `newTag`, `digest`.
 * Transformers run in kustomize's built-in order: patches, namespace, labels, images.
 * Not supported: generators (so no name hashes), name prefixes/suffixes, replicas,
 * replacements, JSON 6902 patches, inline patches, remote resources, components.
 */

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

type Dict = Record<string, unknown>;
const isDict = (value: unknown): value is Dict => typeof value === 'object' && value !== null && !Array.isArray(value);

const KUSTOMIZATION_KEYS = ['apiVersion', 'kind', 'resources', 'patches', 'namespace', 'labels', 'images'];
const NAMESPACED_KINDS = ['ConfigMap', 'Secret', 'Service', 'Deployment', 'StatefulSet', 'HorizontalPodAutoscaler', 'PodDisruptionBudget'];
/** Kinds whose pod template or containers the labels and images transformers would touch. */
const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob', 'ReplicationController', 'Pod'];

function fail(where: string, message: string): never {
  throw new Error(`kustomize (test renderer): ${where}: ${message}`);
}

/** Renders the kustomization in `dir` like `kustomize build dir`, as plain objects. */
export function kustomize(dir: string): K8sObject[] {
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) fail(dir, 'no kustomization.yaml (other file names are not supported)');
  const [spec] = readYaml(file);
  if (spec.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || spec.kind !== 'Kustomization') {
    fail(file, 'expected apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization');
  }
  const unsupported = Object.keys(spec).filter((key) => !KUSTOMIZATION_KEYS.includes(key));
  if (unsupported.length > 0) fail(file, `unsupported field(s): ${unsupported.join(', ')}`);

  let objects: K8sObject[] = [];
  for (const entry of list(spec.resources, `${file} resources`)) {
    if (typeof entry !== 'string' || /^[a-z]+:\/\//i.test(entry) || entry.includes('?ref=')) fail(file, `unsupported resource ${JSON.stringify(entry)}`);
    const path = resolve(dir, entry);
    if (!existsSync(path)) fail(file, `resource ${entry} does not exist`);
    if (statSync(path).isDirectory()) objects.push(...kustomize(path));
    else objects.push(...readObjects(inside(dir, path, file)));
  }
  assertUniqueIds(objects, file);

  for (const entry of list(spec.patches, `${file} patches`)) {
    if (!isDict(entry) || Object.keys(entry).join() !== 'path' || typeof entry.path !== 'string') {
      fail(file, `only patches with a single \`path\` are supported, got ${JSON.stringify(entry)}`);
    }
    const patches = readObjects(inside(dir, resolve(dir, entry.path), file));
    if (patches.length !== 1) fail(`${file} patches`, `${entry.path}: exactly one patch per file is supported`);
    objects = applyPatch(objects, patches[0], entry.path);
  }
  if (spec.namespace !== undefined) setNamespace(objects, String(spec.namespace));
  for (const entry of list(spec.labels, `${file} labels`)) addLabels(objects, entry, file);
  for (const entry of list(spec.images, `${file} images`)) setImages(objects, entry, file);
  assertUniqueIds(objects, file);
  return objects;
}

function list(value: unknown, where: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) fail(where, 'expected a list');
  return value;
}

/** Files may not come from outside the kustomization's directory (kustomize's load restrictor). */
function inside(dir: string, path: string, where: string): string {
  const rel = relative(resolve(dir), path);
  if (rel.startsWith('..') || isAbsolute(rel)) fail(where, `${path} is outside ${dir}`);
  return path;
}

function readYaml(file: string): Dict[] {
  // YAML 1.1, as kubectl and kustomize read it (go-yaml): an unquoted `yes`/`on` is a
  // boolean there, so it must fail here too (e.g. as a ConfigMap value).
  return parseAllDocuments(readFileSync(file, 'utf8'), { version: '1.1' }).map((doc, index) => {
    if (doc.errors.length > 0) fail(`${file} document ${index}`, doc.errors.map((e) => e.message).join('; '));
    const value: unknown = doc.toJS();
    if (!isDict(value)) fail(`${file} document ${index}`, 'expected a mapping');
    return value;
  });
}

function readObjects(file: string): K8sObject[] {
  return readYaml(file).map((value, index) => {
    const metadata = value.metadata;
    if (typeof value.apiVersion !== 'string' || typeof value.kind !== 'string' || !isDict(metadata) || typeof metadata.name !== 'string') {
      fail(`${file} document ${index}`, 'a resource needs apiVersion, kind and metadata.name');
    }
    return value as K8sObject;
  });
}

const group = (apiVersion: string): string => (apiVersion.includes('/') ? apiVersion.split('/')[0] : '');
const idOf = (o: K8sObject): string => `${group(o.apiVersion)}/${o.kind}/${o.metadata.namespace ?? '~'}/${o.metadata.name}`;

function assertUniqueIds(objects: K8sObject[], where: string): void {
  const seen = new Set<string>();
  for (const id of objects.map(idOf)) {
    if (seen.has(id)) fail(where, `two resources with the id ${id}`);
    seen.add(id);
  }
}

// ---------------------------------------------------------------------------------------
// Strategic merge, for the list fields the manifests patch.

/** Lists whose items merge by `name` (their patchMergeKey in the Kubernetes API). */
const MERGE_BY_NAME = ['containers', 'initContainers', 'env'];
/** Lists with no merge key: the patch's list replaces the original. */
const REPLACE = ['command', 'args'];

function applyPatch(objects: K8sObject[], patch: K8sObject, where: string): K8sObject[] {
  const matches = objects.filter(
    (o) =>
      group(o.apiVersion) === group(patch.apiVersion) &&
      o.kind === patch.kind &&
      o.metadata.name === patch.metadata.name &&
      (patch.metadata.namespace === undefined || o.metadata.namespace === patch.metadata.namespace),
  );
  if (matches.length !== 1) fail(where, `patch for ${patch.kind} ${patch.metadata.name} matches ${matches.length} resources`);
  return objects.map((o) => (o === matches[0] ? (mergeMap(o, patch, patch.kind) as K8sObject) : o));
}

function mergeMap(original: Dict, patch: Dict, path: string): Dict {
  const result: Dict = { ...original };
  for (const [key, value] of Object.entries(patch)) {
    const at = `${path}.${key}`;
    if (key.startsWith('$')) fail(at, 'strategic-merge directives are not supported');
    if (value === null) delete result[key];
    else if (Array.isArray(value)) result[key] = mergeList(result[key], value, key, at);
    else if (isDict(value)) result[key] = mergeMap(isDict(result[key]) ? result[key] : {}, value, at);
    else result[key] = value;
  }
  return result;
}

function mergeList(original: unknown, patch: unknown[], key: string, path: string): unknown[] {
  if (REPLACE.includes(key)) return patch;
  if (!MERGE_BY_NAME.includes(key)) fail(path, 'patching this list is not supported (unknown merge strategy)');
  const result = Array.isArray(original) ? [...original] : [];
  for (const item of patch) {
    if (!isDict(item) || typeof item.name !== 'string') fail(path, 'each item needs a name');
    const index = result.findIndex((existing) => isDict(existing) && existing.name === item.name);
    if (index >= 0) result[index] = mergeMap(result[index] as Dict, item, `${path}[${item.name}]`);
    else result.push(mergeMap({}, item, `${path}[${item.name}]`));
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Transformers.

function setNamespace(objects: K8sObject[], namespace: string): void {
  for (const o of objects) {
    if (!NAMESPACED_KINDS.includes(o.kind)) fail(idOf(o), 'the namespace transformer here knows only the kinds deploy/k8s uses');
    o.metadata = { ...o.metadata, namespace };
  }
}

function addLabels(objects: K8sObject[], entry: unknown, where: string): void {
  if (!isDict(entry) || !isDict(entry.pairs)) fail(where, 'labels entries need `pairs`');
  const extra = Object.keys(entry).filter((key) => !['pairs', 'includeTemplates', 'includeSelectors'].includes(key));
  if (extra.length > 0) fail(where, `unsupported labels option(s): ${extra.join(', ')}`);
  // Selectors are immutable on Deployments; the manifests never add labels to them.
  if (entry.includeSelectors === true) fail(where, 'labels with includeSelectors: true are not supported');
  const pairs = Object.fromEntries(Object.entries(entry.pairs).map(([k, v]) => [k, String(v)]));
  for (const o of objects) {
    o.metadata = { ...o.metadata, labels: { ...o.metadata.labels, ...pairs } };
    if (entry.includeTemplates !== true || !WORKLOAD_KINDS.includes(o.kind)) continue;
    // kustomize also labels StatefulSet volumeClaimTemplates and CronJob job templates;
    // only the Deployment's pod template is implemented.
    if (o.kind !== 'Deployment') fail(idOf(o), 'template labels are implemented for Deployments only');
    const template = (o.spec as Dict).template as Dict;
    const metadata = isDict(template.metadata) ? template.metadata : {};
    template.metadata = { ...metadata, labels: { ...(metadata.labels as Dict | undefined), ...pairs } };
  }
}

function setImages(objects: K8sObject[], entry: unknown, where: string): void {
  if (!isDict(entry) || typeof entry.name !== 'string') fail(where, 'images entries need a name');
  const extra = Object.keys(entry).filter((key) => !['name', 'newName', 'newTag', 'digest'].includes(key));
  if (extra.length > 0) fail(where, `unsupported images option(s): ${extra.join(', ')}`);
  for (const o of objects) {
    if (!WORKLOAD_KINDS.includes(o.kind)) continue;
    if (o.kind !== 'Deployment' && o.kind !== 'StatefulSet') fail(idOf(o), 'images are implemented for Deployments and StatefulSets only');
    const pod = ((o.spec as Dict).template as Dict).spec as Dict;
    for (const container of [...((pod.containers as Dict[] | undefined) ?? []), ...((pod.initContainers as Dict[] | undefined) ?? [])]) {
      const ref = parseImage(String(container.image));
      if (ref.name !== entry.name) continue;
      const name = typeof entry.newName === 'string' ? entry.newName : ref.name;
      if (typeof entry.digest === 'string') container.image = `${name}@${entry.digest}`;
      else if (entry.newTag !== undefined) container.image = `${name}:${String(entry.newTag)}`;
      else container.image = `${name}${ref.suffix}`;
    }
  }
}

/** `registry:5000/app:tag@sha256:…` → name `registry:5000/app`, suffix `:tag@sha256:…`. */
function parseImage(image: string): { name: string; suffix: string } {
  const at = image.indexOf('@');
  const withoutDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = withoutDigest.lastIndexOf(':');
  const end = colon > withoutDigest.lastIndexOf('/') ? colon : withoutDigest.length;
  return { name: image.slice(0, end), suffix: image.slice(end) };
}
