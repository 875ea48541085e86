import { createHash } from 'node:crypto';
import type { DagDefinition, HumanDecision, PlanResponse } from '@app/protocol';

/**
 * BullMQ queues between gateways (producers) and workers (consumers): names, the prefix
 * and the job payloads, defined once. Each name carries its own hash tag, so on Redis
 * Cluster every queue's keys stay in one slot while queues spread over the cluster.
 * Renaming a queue strands the jobs in the old one: it is a migration.
 */
export const QUEUE_PREFIX = 'rtq';

export const QUEUES = {
  /** Agent runs started by `chat` (and inbound platform messages). */
  agentRuns: '{agent-runs}',
  /** Steering of runs: cancel, approvals, plan answers. */
  agentControl: '{agent-control}',
  /** DAG executions started by `start_execution`. */
  dagExecutions: '{dag-executions}',
  /** Steering of executions: pause, resume, cancel, human decisions. */
  dagControl: '{dag-control}',
  /** One job per node execution of a DAG (job id `node-<executionId>-<nodeId>`). */
  dagNodes: '{dag-nodes}',
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

export interface AgentRunJob {
  runId: string;
  botId: string;
  sessionId: string;
  userId: string;
  content: string;
  /** The id of the user's message this run answers (the `replyToId` of its reply). */
  messageId: string;
  /** `chat` publishes the user's message into the stream; `inbound` already did (`platform_message`). */
  source: 'chat' | 'inbound';
  model?: string;
  systemPrompt?: string;
}

export type AgentControlJob =
  | { kind: 'cancel'; runId: string; botId: string; userId: string }
  | { kind: 'approval'; approvalId: string; approved: boolean; note?: string; userId: string }
  | { kind: 'plan_response'; planId: string; response: PlanResponse; plan?: string; feedback?: string; userId: string };

export interface DagExecutionJob {
  executionId: string;
  definition: DagDefinition;
  dagId?: string;
  inputs?: Record<string, unknown>;
  budgetUsd?: number;
  userId: string;
}

export interface DagNodeJob {
  executionId: string;
  nodeId: string;
}

/** A node's job id: one job per node and execution, so a node handed out twice is queued once while its job exists. */
export function dagNodeJobId(executionId: string, nodeId: string): string {
  return `node-${executionId}-${nodeId}`;
}

export type DagControlJob =
  | { kind: 'pause' | 'resume' | 'cancel'; executionId: string; userId: string }
  | { kind: 'human_decision'; executionId: string; nodeId: string; decision: HumanDecision; feedback?: string; userId: string };

/**
 * Ids derived from (user, command id): a retried command maps to the same run, session and
 * job, so BullMQ dedupes the job even if the idempotency record were lost. Job ids may not
 * contain `:`; these are `<kind>-<hex>`.
 */
export function derivedId(kind: string, userId: string, commandId: string): string {
  return `${kind}-${createHash('sha256').update(`${userId}\u0000${commandId}`).digest('hex').slice(0, 24)}`;
}
