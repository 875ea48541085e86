import type { ChatMessage, ToolCall, ToolRisk } from '../providers/model-provider';

/**
 * Everything a run needs to carry on where it stopped, as plain JSON: a run waiting for an
 * approval or a plan saves it (`DomainStore.saveRunState`) and leaves the worker; whichever
 * worker resumes it loads it. Changing its shape is a migration of parked runs: add fields as
 * optional, or bump `v`.
 */
export interface RunState {
  v: 1;
  model: string;
  /** The conversation the next model turn sees. */
  messages: ChatMessage[];
  turns: number;
  usage: { promptTokens: number; completionTokens: number; costUsd: number };
  /** Tool calls of the current turn not run yet, in the model's order. */
  pendingCalls: ToolCall[];
  /** What the run waits for while parked. */
  waiting: Waiting | null;
  /** An approved (or edited) plan being worked through, one turn per step. */
  plan: { steps: string[]; next: number } | null;
  /** Approvals and plans opened so far: numbers their ids. */
  decisions: number;
}

export type Waiting =
  | { kind: 'approval'; approvalId: string; call: ToolCall; args: Record<string, unknown>; risk: ToolRisk; expiresAt: number }
  | { kind: 'plan'; planId: string; goal: string; steps: string[]; expiresAt: number };

export function initialRunState(model: string, messages: ChatMessage[]): RunState {
  return {
    v: 1,
    model,
    messages,
    turns: 0,
    usage: { promptTokens: 0, completionTokens: 0, costUsd: 0 },
    pendingCalls: [],
    waiting: null,
    plan: null,
    decisions: 0,
  };
}

/** The plan as dashboards see it in `plan_created`: markdown, one numbered step per line. */
export function planMarkdown(goal: string, steps: readonly string[]): string {
  return [`Plan: ${goal}`, '', ...steps.map((step, i) => `${i + 1}. ${step}`)].join('\n');
}

/**
 * The steps of a plan a dashboard edited: its list items (`1. …`, `2) …`, `- …`, `* …`), or,
 * when it has none, each non-empty line that is not a heading.
 */
export function parsePlanSteps(markdown: string): string[] {
  const lines = markdown.split(/\r?\n/).map((line) => line.trim());
  const items = lines.map((line) => /^(?:\d+[.)]|[-*+])\s+(.+)$/.exec(line)?.[1]?.trim()).filter((item): item is string => !!item);
  if (items.length > 0) return items;
  return lines.filter((line) => line.length > 0 && !line.startsWith('#') && !/^plan:/i.test(line));
}
