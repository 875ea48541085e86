import 'reflect-metadata';
import { hostname } from 'node:os';
import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';

/** Thrown at start when the environment is invalid; the message names every bad variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Reads environment variables into a validated, typed config object (an env DTO whose
 * property names are the variable names). Unset variables keep the DTO's defaults;
 * numbers and booleans are converted by the DTO's `@Transform`s. Throws {@link ConfigError}
 * listing each variable that is wrong and why.
 */
export function loadConfig<T extends object>(dto: ClassConstructor<T>, env: NodeJS.ProcessEnv = process.env): T {
  const defined = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const config = plainToInstance(dto, defined, { exposeDefaultValues: true, excludeExtraneousValues: false });
  const errors = validateSync(config, { whitelist: false, skipMissingProperties: false, validationError: { target: false } });
  const problems = errors.flatMap((error) => describe(error, defined));
  if (problems.length > 0) throw new ConfigError(problems);
  // Only the DTO's own properties: the rest of the environment does not ride along.
  const known = Object.keys(new dto());
  return Object.fromEntries(known.map((key) => [key, (config as Record<string, unknown>)[key]])) as T;
}

function describe(error: ValidationError, env: Record<string, unknown>): string[] {
  const raw = env[error.property];
  const shown = raw === undefined ? 'unset' : `got ${JSON.stringify(raw)}`;
  return Object.values(error.constraints ?? {}).map((message) => `${error.property}: ${message} (${shown})`);
}

/** `@Transform` helpers for env DTOs: environment values are always strings. */
export const toInt = ({ value }: { value: unknown }): unknown => (typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value);

export const toBool = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string') return value;
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  return value;
};

export const toList = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string'
    ? value
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item.length > 0)
    : value;

/**
 * A process's default identity in the fleet (SERVER_ID / WORKER_ID unset): its host name
 * (the pod name on Kubernetes) made id-safe, and its pid, so two processes on one host differ.
 */
export function defaultProcessId(): string {
  return `${hostname()
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .slice(0, 40)}-${process.pid}`;
}
