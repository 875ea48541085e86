import type { ToolRisk, ToolSpec } from '../providers/model-provider';

/**
 * A tool the runtime may call for a model (PROTOCOL.md §9). `risk` decides whether a call
 * waits for a dashboard's approval first: at or above the bot's threshold, it does.
 * `run` gets the parsed JSON arguments (any shape: validate them) and returns the result the
 * model and the dashboards see; throwing a {@link ToolError} reports a failed call, and the run
 * goes on.
 */
export interface Tool {
  readonly spec: ToolSpec;
  readonly risk: ToolRisk;
  run(args: Record<string, unknown>, context: ToolContext): Promise<unknown>;
}

export interface ToolContext {
  /** Aborted on cancel or at the shutdown deadline: stop at once. */
  signal: AbortSignal;
  botId: string;
  runId: string;
}

/** A tool call that failed in a way worth telling the model and the dashboards. */
export class ToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ToolError';
  }
}

const RISK_ORDER: readonly ToolRisk[] = ['low', 'medium', 'high', 'critical'];

/** Whether a tool of `risk` needs an approval under `threshold`. */
export function needsApproval(risk: ToolRisk, threshold: ToolRisk): boolean {
  return RISK_ORDER.indexOf(risk) >= RISK_ORDER.indexOf(threshold);
}

export function isToolRisk(value: string): value is ToolRisk {
  return (RISK_ORDER as readonly string[]).includes(value);
}

/** A required string argument, or a ToolError naming it. */
export function stringArg(args: Record<string, unknown>, name: string): string {
  const value = args[name];
  if (typeof value !== 'string' || value.length === 0) throw new ToolError(`argument "${name}" must be a non-empty string`);
  return value;
}
