import type { AgentRunJob, DecisionAnswer, DomainStore, Producer, PublishOptions } from '@app/backplane';
import { type BotEvent, roundUsd, type RunStatus } from '@app/protocol';
import type { DeltaCoalescer, PublishEvent } from '../../ops/delta-coalescer';
import { HandedBack } from '../../ops/hand-back';
import type { BotCatalog, BotDefinition } from '../bots/bot-definition';
import { type ChatMessage, type ModelProvider, ModelProviderError, type ModelTurnRequest, type ToolCall } from '../providers/model-provider';
import type { ProviderRegistry } from '../providers/provider-registry';
import { needsApproval, type Tool, ToolError } from '../tools/tool';
import type { ToolRegistry } from '../tools/tool-registry';
import { type PriceTable, turnCost } from './price-table';
import { initialRunState, parsePlanSteps, planMarkdown, type RunState, type Waiting } from './run-state';

export type Publish = (botId: string, event: BotEvent, options?: PublishOptions) => Promise<unknown>;

export interface RuntimeOptions {
  approvalTimeoutMs: number;
  approvalOnExpiry: 'reject' | 'approve';
  planTimeoutMs: number;
  /** Per-model prices (`AGENT_PRICES`): a listed model's turns are priced from their tokens. */
  prices?: PriceTable;
}

export interface RuntimeDeps {
  bots: BotCatalog;
  providers: ProviderRegistry;
  tools: ToolRegistry;
  store: DomainStore;
  publish: Publish;
  /**
   * Claims a run's producer epoch on its bot's stream before a processing publishes anything
   * (StreamPublisher.fence): an older processing still running is refused from then on.
   */
  fence?: (botId: string, producerId: string, epoch: number) => Promise<void>;
  /**
   * Builds a run's coalescer (EventSink.coalescer: MESSAGE_COALESCE_MS): every event of a run
   * goes through it, so streamed text leaves in merged deltas, in order. Without one, each
   * event is published as it comes.
   */
  coalescer?: (send: PublishEvent) => DeltaCoalescer;
  options: RuntimeOptions;
  now?: () => number;
}

/** How a call of the runtime ended: the run finished (its one `done` is out), or it waits, parked, until `until` at the latest. */
export type RunOutcome = { kind: 'finished'; status: RunStatus } | { kind: 'parked'; until: number; waiting: Waiting };

export interface RunSignals {
  /** Cancel or interrupt: the run ends `cancelled`. */
  cancel: AbortSignal;
  /** The worker's shutdown deadline: the run stops, publishes nothing more, and {@link HandedBack} is thrown. */
  handBack?: AbortSignal;
  /**
   * This processing's producer: `producerIds.run(runId)` with BullMQ's `attemptsStarted` as
   * its epoch (it grows each time the job becomes active), one per processing whatever calls
   * it makes (a run that fails is then ended under the same one). Every event of the run is
   * stamped by it, so each is published once, and a worker still running a job that was
   * given to another (it stalled) is fenced off once the other one claimed the run
   * (ProducerFencedError). Without one, events go unstamped.
   */
  producer?: Producer;
}

interface RunContext {
  job: AgentRunJob;
  bot: BotDefinition;
  provider: ModelProvider | undefined;
  signals: RunSignals;
  stop: AbortSignal;
  /** The assistant message being streamed, kept for the session history if the run stops mid-message. */
  streaming: { messageId: string; text: string } | null;
  /** The tool call between its `tool_start` and `tool_end`: a run that stops there still ends the pair. */
  openTool: { call: ToolCall; startedAt: number } | null;
  /** The run's coalescer, and the publish options of the events that have some (a `done`'s idempotency key). */
  out: { coalescer: DeltaCoalescer; options: WeakMap<BotEvent, PublishOptions> } | null;
  /** Publishes one of the run's events, stamped by the processing's producer unless it has options of its own. */
  send: (event: BotEvent, options?: PublishOptions) => Promise<unknown>;
}

/** Decision events outlive the longest wait (7 days): a resumed run announcing again must stay a duplicate. */
const DECISION_EVENT_TTL_S = 8 * 24 * 3600;
const HISTORY_TURNS = 50;

/**
 * The agent runtime (PROTOCOL.md §4, §9): the loop of model turns and tool calls for one run,
 * with events in the contract's order — `run_started`, the user's message, `thinking`,
 * `message` deltas sharing one `messageId` (with `replyToId`), `tool_start`/`tool_end` pairs,
 * `approval_needed` … `approval_resolved`, `plan_created` … `plan_resolved`, `usage` (run
 * totals) and exactly one `done`.
 *
 * A tool at or above the bot's approval threshold, or a proposed plan, opens a decision and
 * *parks* the run: its state is saved and the call returns `parked`, so the worker lets the
 * job go (no slot held) until the answer or the expiry wakes it, here or on another worker.
 */
export class AgentRuntime {
  private readonly now: () => number;

  constructor(private readonly deps: RuntimeDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Starts a fresh run. */
  async start(job: AgentRunJob, signals: RunSignals): Promise<RunOutcome> {
    const ctx = this.context(job, signals);
    return this.processing(ctx, () => this.begin(ctx, job));
  }

  private async begin(ctx: RunContext, job: AgentRunJob): Promise<RunOutcome> {
    const base = { sessionId: job.sessionId, runId: job.runId };
    const model = job.model ?? ctx.bot.model;
    await this.publish(ctx, { type: 'run_started', payload: { ...base, model } });
    if (job.source === 'chat') {
      await this.publish(ctx, { type: 'message', payload: { ...base, messageId: job.messageId, role: 'user', content: job.content, delta: false } });
    }
    const history = await this.deps.store.sessionMessages(job.sessionId);
    await this.deps.store.appendSessionMessage(job.sessionId, {
      messageId: job.messageId,
      role: 'user',
      content: job.content,
      runId: job.runId,
      ts: this.now(),
    });
    const messages: ChatMessage[] = [
      { role: 'system', content: job.systemPrompt ?? ctx.bot.systemPrompt },
      ...history
        .filter((m) => m.role === 'user' || m.role === 'assistant')
        .slice(-HISTORY_TURNS)
        .map((m): ChatMessage => ({ role: m.role as 'user' | 'assistant', content: m.content })),
      { role: 'user', content: job.content },
    ];
    return this.drive(ctx, initialRunState(model, messages));
  }

  /** Carries on a parked run from its saved state (the answer came, or the wait expired, or it is re-checked). */
  async resume(job: AgentRunJob, state: RunState, signals: RunSignals): Promise<RunOutcome> {
    const ctx = this.context(job, signals);
    return this.processing(ctx, () => this.drive(ctx, state));
  }

  /**
   * Ends a run that will not go on (cancelled while queued or parked, or left half-done by a
   * dead worker): `error` when there is a message, `usage` when it had started, one `done`.
   */
  async end(job: AgentRunJob, status: RunStatus, state: RunState | null, message?: string, producer?: Producer): Promise<RunOutcome> {
    const ctx = this.context(job, { cancel: new AbortController().signal, producer });
    return this.processing(ctx, () => this.finish(ctx, state, status, message ? { code: 'RUN_FAILED', message } : undefined));
  }

  /**
   * One call of a processing: it first claims its producer's epoch (when the worker gave one),
   * and however it ends — finished, parked, handed back or failed — what the run's coalescer
   * still holds is published before the call returns: nothing of this call may reach the
   * stream after whatever comes next (another worker's `done`, the `error` of a failed run).
   */
  private async processing(ctx: RunContext, body: () => Promise<RunOutcome>): Promise<RunOutcome> {
    const { producer } = ctx.signals;
    if (producer) await this.deps.fence?.(ctx.job.botId, producer.id, producer.epoch);
    try {
      return await body();
    } finally {
      // A failure here was the failure of a delta the body's own events would have reported.
      await ctx.out?.coalescer.flush().catch(() => undefined);
    }
  }

  private context(job: AgentRunJob, signals: RunSignals): RunContext {
    const bot = this.deps.bots.definitionOf(job.botId);
    const stop = signals.handBack ? AbortSignal.any([signals.cancel, signals.handBack]) : signals.cancel;
    const options = new WeakMap<BotEvent, PublishOptions>();
    const { producer } = signals;
    // An event with options of its own (a `done`'s key) keeps them; any other gets the next stamp.
    const send = (event: BotEvent, own?: PublishOptions) => this.deps.publish(job.botId, event, own ?? (producer ? { producer: producer.next() } : undefined));
    const coalescer = this.deps.coalescer?.((event) => send(event, options.get(event)));
    return {
      job,
      bot,
      provider: this.deps.providers.get(bot.provider),
      signals,
      stop,
      streaming: null,
      openTool: null,
      out: coalescer ? { coalescer, options } : null,
      send,
    };
  }

  private async drive(ctx: RunContext, state: RunState): Promise<RunOutcome> {
    try {
      for (;;) {
        if (state.waiting) {
          const parked = await this.settle(ctx, state);
          if (parked) return parked;
          continue;
        }
        if (state.pendingCalls.length > 0) {
          const parked = await this.callTool(ctx, state, state.pendingCalls[0]);
          if (parked) return parked;
          continue;
        }
        if (state.plan) {
          if (state.plan.next >= state.plan.steps.length) return await this.finish(ctx, state, 'completed');
          await this.planStep(ctx, state, state.plan);
          continue;
        }
        if (state.turns >= ctx.bot.maxTurns) return await this.fail(ctx, state, 'MAX_TURNS', `the model took ${state.turns} turns without a final reply`);
        const next = await this.modelTurn(ctx, state);
        if (next === 'reply') return await this.finish(ctx, state, 'completed');
        if (next !== 'continue') return next;
      }
    } catch (error) {
      if (ctx.signals.handBack?.aborted) throw new HandedBack();
      if (ctx.signals.cancel.aborted) return this.finish(ctx, state, 'cancelled');
      if (error instanceof ModelProviderError) return this.fail(ctx, state, error.code, error.message);
      throw error;
    }
  }

  /** One model turn: streams thinking and text, collects tool calls or a plan. */
  private async modelTurn(ctx: RunContext, state: RunState): Promise<'reply' | 'continue' | RunOutcome> {
    const turn = await this.stream(ctx, state, `${ctx.job.runId}.reply-${state.turns + 1}`);
    if (turn.calls.length > 0) {
      state.pendingCalls = turn.calls;
      return 'continue';
    }
    if (turn.plan) {
      const planId = `${ctx.job.runId}.plan-${++state.decisions}`;
      state.waiting = { kind: 'plan', planId, goal: turn.plan.goal, steps: turn.plan.steps, expiresAt: this.now() + this.deps.options.planTimeoutMs };
      return this.park(ctx, state);
    }
    return 'reply';
  }

  /** Streams one provider turn into the run; the assistant's text goes to the conversation and the session history. */
  private async stream(
    ctx: RunContext,
    state: RunState,
    messageId: string,
    planStep?: ModelTurnRequest['planStep'],
  ): Promise<{ calls: ToolCall[]; plan: { goal: string; steps: string[] } | null }> {
    if (!ctx.provider) throw new ModelProviderError('MODEL_UNAVAILABLE', `no model provider named ${ctx.bot.provider} is configured on this worker`);
    const base = { sessionId: ctx.job.sessionId, runId: ctx.job.runId };
    const calls: ToolCall[] = [];
    let plan: { goal: string; steps: string[] } | null = null;
    const streaming = { messageId, text: '' };
    ctx.streaming = streaming;
    const request: ModelTurnRequest = { model: state.model, messages: state.messages, tools: this.toolSpecs(ctx.bot), signal: ctx.stop };
    if (planStep) request.planStep = planStep;
    for await (const part of ctx.provider.turn(request)) {
      if (ctx.stop.aborted) break;
      switch (part.kind) {
        case 'thinking':
          await this.publish(ctx, { type: 'thinking', payload: { ...base, content: part.text } });
          break;
        case 'text':
          if (!part.text) break;
          streaming.text += part.text;
          await this.publish(ctx, {
            type: 'message',
            payload: { ...base, messageId, role: 'assistant', content: part.text, delta: true, replyToId: ctx.job.messageId },
          });
          break;
        case 'tool_call':
          calls.push(part.call);
          break;
        case 'plan':
          plan = { goal: part.goal, steps: part.steps };
          break;
        case 'usage':
          state.usage.promptTokens += part.promptTokens;
          state.usage.completionTokens += part.completionTokens;
          state.usage.costUsd = roundUsd(state.usage.costUsd + turnCost(this.deps.options.prices ?? {}, state.model, part));
          break;
      }
    }
    // A provider that stops at the abort without throwing: the run still ends as the signal says.
    if (ctx.stop.aborted) throw new Error('the run was stopped');
    state.turns++;
    const text = streaming.text;
    ctx.streaming = null;
    state.messages.push(calls.length > 0 ? { role: 'assistant', content: text, toolCalls: calls } : { role: 'assistant', content: text });
    if (text) await this.remember(ctx, messageId, text);
    return { calls, plan };
  }

  private toolSpecs(bot: BotDefinition) {
    return bot.tools.map((name) => this.deps.tools.get(name)?.spec).filter((spec) => spec !== undefined);
  }

  /** The first pending call: `tool_start`, then either its approval (parking the run) or its result. */
  private async callTool(ctx: RunContext, state: RunState, call: ToolCall): Promise<RunOutcome | null> {
    state.pendingCalls = state.pendingCalls.slice(1);
    let args: unknown;
    try {
      args = call.arguments.trim() ? JSON.parse(call.arguments) : {};
    } catch {
      args = call.arguments;
    }
    const base = { sessionId: ctx.job.sessionId, runId: ctx.job.runId };
    await this.publish(ctx, { type: 'tool_start', payload: { ...base, toolCallId: call.id, tool: call.name, args } });
    const startedAt = this.now();
    ctx.openTool = { call, startedAt };
    const tool = ctx.bot.tools.includes(call.name) ? this.deps.tools.get(call.name) : undefined;
    if (!tool) return this.toolEnd(ctx, state, call, startedAt, false, `unknown tool ${call.name}`);
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      return this.toolEnd(ctx, state, call, startedAt, false, 'the arguments are not a JSON object');
    }
    const objectArgs = args as Record<string, unknown>;
    if (needsApproval(tool.risk, ctx.bot.approvalThreshold)) {
      const approvalId = `${ctx.job.runId}.approval-${++state.decisions}`;
      state.waiting = { kind: 'approval', approvalId, call, args: objectArgs, risk: tool.risk, expiresAt: this.now() + this.deps.options.approvalTimeoutMs };
      return this.park(ctx, state);
    }
    return this.runTool(ctx, state, call, tool, objectArgs, startedAt);
  }

  private async runTool(ctx: RunContext, state: RunState, call: ToolCall, tool: Tool, args: Record<string, unknown>, startedAt: number): Promise<null> {
    let result: unknown;
    try {
      result = await tool.run(args, { signal: ctx.stop, botId: ctx.job.botId, runId: ctx.job.runId });
    } catch (error) {
      if (ctx.stop.aborted) throw error;
      const message = error instanceof ToolError ? error.message : `the tool failed: ${error instanceof Error ? error.message : String(error)}`;
      return this.toolEnd(ctx, state, call, startedAt, false, message);
    }
    return this.toolEnd(ctx, state, call, startedAt, true, result);
  }

  /** `tool_end`, and the result in the conversation (a failure as `error: <why>`), for the model's next turn. */
  private async toolEnd(ctx: RunContext, state: RunState, call: ToolCall, startedAt: number, success: boolean, result: unknown): Promise<null> {
    ctx.openTool = null;
    await this.publish(ctx, {
      type: 'tool_end',
      payload: {
        sessionId: ctx.job.sessionId,
        runId: ctx.job.runId,
        toolCallId: call.id,
        result: success ? result : { error: result },
        success,
        durationMs: Math.max(0, this.now() - startedAt),
      },
    });
    const content = success ? (typeof result === 'string' ? result : JSON.stringify(result)) : `error: ${String(result)}`;
    state.messages.push({ role: 'tool', toolCallId: call.id, content });
    return null;
  }

  /**
   * Opens the decision the run waits for, saves the run and announces the question. Each step
   * can be repeated: a worker that died half-way leaves a run whose resume announces again
   * under the same idempotency key.
   */
  private async park(ctx: RunContext, state: RunState): Promise<RunOutcome> {
    const waiting = state.waiting as Waiting;
    const { job } = ctx;
    const record = { botId: job.botId, runId: job.runId, sessionId: job.sessionId, expiresAt: waiting.expiresAt };
    await this.deps.store.createDecision(waiting.kind, waiting.kind === 'approval' ? waiting.approvalId : waiting.planId, record);
    await this.deps.store.saveRunState(job.runId, state);
    await this.deps.store.setRunStatus(job.runId, 'waiting');
    await this.announce(ctx, waiting);
    return { kind: 'parked', until: waiting.expiresAt, waiting };
  }

  private async announce(ctx: RunContext, waiting: Waiting): Promise<void> {
    const base = { sessionId: ctx.job.sessionId, runId: ctx.job.runId };
    const once = { idempotencyTtlSeconds: DECISION_EVENT_TTL_S };
    if (waiting.kind === 'approval') {
      const { approvalId, call, args, risk, expiresAt } = waiting;
      await this.publish(
        ctx,
        { type: 'approval_needed', payload: { ...base, approvalId, tool: call.name, args, riskLevel: risk, expiresAt } },
        { ...once, idempotencyKey: `approval-needed.${approvalId}` },
      );
    } else {
      await this.publish(
        ctx,
        { type: 'plan_created', payload: { ...base, planId: waiting.planId, plan: planMarkdown(waiting.goal, waiting.steps) } },
        { ...once, idempotencyKey: `plan-created.${waiting.planId}` },
      );
    }
  }

  /**
   * A parked run looks at its decision: still open and not expired → parked again; answered
   * (or expired, which settles it with the configured default) → announced and applied.
   */
  private async settle(ctx: RunContext, state: RunState): Promise<RunOutcome | null> {
    const waiting = state.waiting as Waiting;
    const id = waiting.kind === 'approval' ? waiting.approvalId : waiting.planId;
    await this.announce(ctx, waiting);
    const decision = await this.deps.store.getDecision(waiting.kind, id);
    // Lost with Redis data, or past its TTL: nobody can answer it any more.
    if (!decision) throw new Error(`decision ${id} of run ${ctx.job.runId} is gone`);
    let answer = decision.answer;
    if (!answer) {
      if (this.now() < waiting.expiresAt) return { kind: 'parked', until: waiting.expiresAt, waiting };
      const expired: DecisionAnswer =
        waiting.kind === 'approval'
          ? { kind: 'approval', approved: this.deps.options.approvalOnExpiry === 'approve', resolvedBy: 'system', expired: true }
          : { kind: 'plan', response: 'reject', resolvedBy: 'system', expired: true };
      const outcome = await this.deps.store.decide(id, expired, `expiry.${ctx.job.runId}`, 0);
      answer = outcome === 'resolved' ? expired : (await this.deps.store.getDecision(waiting.kind, id))?.answer;
      if (!answer) throw new Error(`decision ${id} of run ${ctx.job.runId} is gone`);
    }
    await this.deps.store.setRunStatus(ctx.job.runId, 'running');
    await publishResolution(this.deps.publish, ctx.job.botId, ctx.job.sessionId, id, answer);
    state.waiting = null;
    if (waiting.kind === 'approval' && answer.kind === 'approval') {
      const startedAt = this.now();
      const tool = this.deps.tools.get(waiting.call.name);
      ctx.openTool = { call: waiting.call, startedAt };
      if (!answer.approved)
        await this.toolEnd(ctx, state, waiting.call, startedAt, false, answer.expired ? 'the approval expired' : 'the approval was rejected');
      else if (!tool) await this.toolEnd(ctx, state, waiting.call, startedAt, false, `unknown tool ${waiting.call.name}`);
      else await this.runTool(ctx, state, waiting.call, tool, waiting.args, startedAt);
      return null;
    }
    if (waiting.kind === 'plan' && answer.kind === 'plan' && answer.response !== 'reject') {
      const edited = answer.response === 'edit' && answer.plan ? parsePlanSteps(answer.plan) : [];
      state.plan = { steps: edited.length > 0 ? edited : waiting.steps, next: 0 };
      return null;
    }
    const feedback = answer.kind === 'plan' && answer.feedback ? ` Feedback: ${answer.feedback}` : '';
    const reply = `${answer.expired ? 'The plan was not answered in time' : 'The plan was rejected'}, so nothing was done.${feedback}`;
    const messageId = `${ctx.job.runId}.reply-plan`;
    await this.publish(ctx, {
      type: 'message',
      payload: { sessionId: ctx.job.sessionId, runId: ctx.job.runId, messageId, role: 'assistant', content: reply, delta: false, replyToId: ctx.job.messageId },
    });
    state.messages.push({ role: 'assistant', content: reply });
    await this.remember(ctx, messageId, reply);
    return this.finish(ctx, state, 'completed');
  }

  /** One step of an approved plan: its own turn, streamed as its own assistant message. */
  private async planStep(ctx: RunContext, state: RunState, plan: { steps: string[]; next: number }): Promise<void> {
    const index = plan.next + 1;
    const text = plan.steps[plan.next];
    state.messages.push({ role: 'user', content: `Carry out step ${index} of ${plan.steps.length} of the plan: ${text}` });
    const turn = await this.stream(ctx, state, `${ctx.job.runId}.step-${index}`, { index, total: plan.steps.length, text });
    // Tool calls inside a step run before the next step, which sees their results.
    state.pendingCalls = turn.calls;
    plan.next++;
  }

  private fail(ctx: RunContext, state: RunState, code: string, message: string): Promise<RunOutcome> {
    return this.finish(ctx, state, 'failed', { code, message });
  }

  /**
   * `usage` with the run's totals, the `error` that failed it if any, then its one `done`
   * (under an idempotency key: whatever retries happen, a run ends once).
   */
  private async finish(ctx: RunContext, state: RunState | null, status: RunStatus, error?: { code: string; message: string }): Promise<RunOutcome> {
    const { job } = ctx;
    const base = { sessionId: job.sessionId, runId: job.runId };
    if (ctx.streaming?.text) await this.remember(ctx, ctx.streaming.messageId, ctx.streaming.text);
    ctx.streaming = null;
    const open = ctx.openTool ?? (state?.waiting?.kind === 'approval' ? { call: state.waiting.call, startedAt: this.now() } : null);
    if (open && state) await this.toolEnd(ctx, state, open.call, open.startedAt, false, `the run ended (${status}) before the tool ran`);
    if (state) {
      const { promptTokens, completionTokens, costUsd } = state.usage;
      await this.publish(ctx, {
        type: 'usage',
        payload: { ...base, promptTokens, completionTokens, totalTokens: promptTokens + completionTokens, totalCost: costUsd },
      });
      // A decision the run no longer waits for is closed: a late answer gets CONFLICT.
      if (state.waiting) {
        const closed: DecisionAnswer =
          state.waiting.kind === 'approval'
            ? { kind: 'approval', approved: false, resolvedBy: 'system', closed: true }
            : { kind: 'plan', response: 'reject', resolvedBy: 'system', closed: true };
        await this.deps.store.decide(state.waiting.kind === 'approval' ? state.waiting.approvalId : state.waiting.planId, closed, `closed.${job.runId}`, 0);
      }
    }
    if (error) await this.publish(ctx, { type: 'error', payload: { ...base, ...error } });
    await this.publish(ctx, { type: 'done', payload: { ...base, replyToId: job.messageId, status } }, { idempotencyKey: `run-done.${job.runId}` });
    await this.deps.store.setRunStatus(job.runId, status);
    await this.deps.store.deleteRunState(job.runId);
    return { kind: 'finished', status };
  }

  private publish(ctx: RunContext, event: BotEvent, options?: PublishOptions): Promise<unknown> {
    if (!ctx.out) return ctx.send(event, options);
    if (options) ctx.out.options.set(event, options);
    return ctx.out.coalescer.publish(event);
  }

  private remember(ctx: RunContext, messageId: string, content: string): Promise<void> {
    return this.deps.store.appendSessionMessage(ctx.job.sessionId, { messageId, role: 'assistant', content, runId: ctx.job.runId, ts: this.now() });
  }
}

/**
 * `approval_resolved` / `plan_resolved` under one key per decision: the control job that
 * carried the answer and the run that applies it may both announce it; it goes out once.
 */
export async function publishResolution(publish: Publish, botId: string, sessionId: string, id: string, answer: DecisionAnswer): Promise<void> {
  const once = { idempotencyKey: `${answer.kind}-resolved.${id}`, idempotencyTtlSeconds: DECISION_EVENT_TTL_S };
  if (answer.kind === 'approval') {
    await publish(botId, { type: 'approval_resolved', payload: { sessionId, approvalId: id, approved: answer.approved, resolvedBy: answer.resolvedBy } }, once);
  } else {
    await publish(botId, { type: 'plan_resolved', payload: { sessionId, planId: id, response: answer.response, resolvedBy: answer.resolvedBy } }, once);
  }
}
