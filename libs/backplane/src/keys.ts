import calculateSlot from 'cluster-key-slot';
import type { StreamName } from '@app/protocol';

/**
 * Every Redis key and channel name of the backplane is built here and nowhere else.
 * Renaming one is a data migration: running pods and workers must agree on it.
 *
 * All keys of one stream share the hash tag `{<stream>}` — and so does its live channel —
 * so each Lua script touches a single Redis Cluster slot and may SPUBLISH from inside.
 */
export const KEY_PREFIX = 'rt';

export interface StreamKeys {
  /**
   * HASH `epoch`, `seq` (head), `createdAt`, `checkpointSeq`; `replid`, the master
   * replication id the epoch is bound to, and `base`, the seq before the epoch's first event
   * (a failover or restart starts a new epoch that continues the seqs); `touched`, when the
   * idle TTL was last refreshed (ms).
   */
  meta: string;
  /** STREAM of envelopes; entry id `<seq>-0`, fields `i` (event id), `t` (ts), `e` (envelope JSON). */
  history: string;
  /** STRING JSON `{ seq, epoch, state }`: the stream's state folded up to `seq`. */
  checkpoint: string;
  /** STRING lock (PX) held by the one process folding a new checkpoint. */
  compactLock: string;
  /** HASH userId → connections watching, across pods. */
  presenceUsers: string;
  /** HASH `<podId>|<userId>` → connections on that pod. */
  presenceConns: string;
  /** ZSET podId → last heartbeat (ms): a pod that stops beating is pruned. */
  presencePods: string;
}

const tag = (stream: StreamName) => `${KEY_PREFIX}:{${stream}}`;

export function streamKeys(stream: StreamName): StreamKeys {
  const t = tag(stream);
  return {
    meta: `${t}:meta`,
    history: `${t}:history`,
    checkpoint: `${t}:checkpoint`,
    compactLock: `${t}:compacting`,
    presenceUsers: `${t}:presence:users`,
    presenceConns: `${t}:presence:conns`,
    presencePods: `${t}:presence:pods`,
  };
}

/**
 * The Redis Cluster hash slot of every key and the channel of `stream` (they share its hash
 * tag): a script may touch the keys of several streams only if their slots are equal.
 */
export function streamSlot(stream: StreamName): number {
  return calculateSlot(tag(stream));
}

/**
 * A producer's fence on one stream (see publish.lua.ts): STRING `<epoch>:<seq>:<answer>`.
 * Producer ids carry their namespace (`producerIds` in producers.ts).
 */
export function producerKey(stream: StreamName, producerId: string): string {
  return `${tag(stream)}:producer:${producerId}`;
}

/** The channel a stream's events and presence changes are SPUBLISHed on. */
export function streamChannel(stream: StreamName): string {
  return `${tag(stream)}:live`;
}

/** The stream a live channel belongs to, or null for a channel that is not one. */
export function streamOfChannel(channel: string): StreamName | null {
  const match = /^rt:\{((?:bot|dag):[A-Za-z0-9_.-]{1,128})\}:live$/.exec(channel);
  return match ? (match[1] as StreamName) : null;
}

/** Command idempotency records, per user (a command id is unique per client, not globally). */
export function commandKey(userId: string, commandId: string): string {
  // `sub` is any string: encoding keeps braces in it from breaking the hash tag.
  return `${KEY_PREFIX}:{user:${encodeURIComponent(userId)}}:cmd:${commandId}`;
}

/**
 * Broadcast (plain PUBLISH, every worker hears it) asking the worker that runs a job to
 * stop it: the message is the run id. Workers also poll the run record, so a missed
 * broadcast only delays a cancel.
 */
export const RUN_CANCEL_CHANNEL = `${KEY_PREFIX}:agent-runs:cancel`;

/**
 * Broadcast (plain PUBLISH) asking every worker to abort its running node jobs of an
 * execution that is cancelling or failing: the message is the execution id.
 */
export const DAG_ABORT_CHANNEL = `${KEY_PREFIX}:dag-nodes:abort`;

/** Readiness probe channel: a pod proves its subscriber connection by a round trip. */
export function probeChannel(podId: string): string {
  return `${KEY_PREFIX}:{pod:${podId}}:probe`;
}

/**
 * Records of the bot/DAG domain that the gateway checks before queueing a command, each
 * under its own hash tag (ids are `[A-Za-z0-9_.-]`, so they cannot break one).
 */
export const domainKeys = {
  /** HASH botId, sessionId, userId, status: who may cancel a run, and whether it ended. */
  run: (runId: string) => `${KEY_PREFIX}:{run:${runId}}`,
  /** HASH botId, title, createdBy, createdAt. */
  session: (sessionId: string) => `${KEY_PREFIX}:{session:${sessionId}}`,
  /** LIST of message JSON, oldest first, capped. */
  sessionMessages: (sessionId: string) => `${KEY_PREFIX}:{session:${sessionId}}:messages`,
  /** STRING JSON: a parked run's continuation (conversation, usage, what it waits for), read by whichever worker resumes it. */
  runState: (runId: string) => `${KEY_PREFIX}:{run:${runId}}:state`,
  /** LIST of the session's unfinished run ids, oldest first: the head runs, the rest wait their turn (`chat.onBusy`). */
  sessionRuns: (sessionId: string) => `${KEY_PREFIX}:{session:${sessionId}}:runs`,
  /** HASH botId, runId, sessionId, status (pending | resolved), expiresAt?, answer (JSON, once resolved), `status:by`. */
  approval: (approvalId: string) => `${KEY_PREFIX}:{approval:${approvalId}}`,
  /** HASH as `approval`. */
  plan: (planId: string) => `${KEY_PREFIX}:{plan:${planId}}`,
  /** HASH botId (or `*`) → JSON of the settings gateways apply for that bot (its default `chat.onBusy`), written by workers. */
  botSettings: () => `${KEY_PREFIX}:{bots}:settings`,
  /** HASH status, userId; human gates as fields `gate:<nodeId>`. */
  execution: (executionId: string) => `${KEY_PREFIX}:{execution:${executionId}}`,
  /** HASH: the DAG engine's state of an execution (fields listed in scripts/dag-engine.lua.ts). */
  executionEngine: (executionId: string) => `${KEY_PREFIX}:{execution:${executionId}}:engine`,
  /** LIST of ready node ids waiting for a slot (the execution's concurrency limit, or a pause). */
  executionReady: (executionId: string) => `${KEY_PREFIX}:{execution:${executionId}}:ready`,
  /** HASH node id → JSON `{ node, preds }`: each node's definition (map items included) and its predecessors. */
  executionNodes: (executionId: string) => `${KEY_PREFIX}:{execution:${executionId}}:nodes`,
  /**
   * HASH `out:<node>` → JSON output of a completed node; `err:<node>:<attempt>` → the error of
   * a failed attempt. Written once (HSETNX): a node job run again after its worker died
   * replays what the first run decided instead of deciding again.
   */
  executionOutcomes: (executionId: string) => `${KEY_PREFIX}:{execution:${executionId}}:outcomes`,
  /** STRING JSON DagDefinition, stored for `start_execution { dagId }`. */
  dagDefinition: (dagId: string) => `${KEY_PREFIX}:{dag-definition:${dagId}}`,
};
