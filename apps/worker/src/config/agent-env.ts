import { Transform } from 'class-transformer';
import {
  IsArray,
  IsIn,
  IsInt,
  IsString,
  Matches,
  Max,
  Min,
  MinLength,
  Validate,
  type ValidationArguments,
  ValidatorConstraint,
  type ValidatorConstraintInterface,
} from 'class-validator';
import { BackplaneEnv } from '@app/backplane';
import { BUSY_POLICIES, type BusyPolicy } from '@app/protocol';
import { toInt, toList } from '@app/runtime';
import type { BotDefinition } from '../agents/bots/bot-definition';
import type { ToolRisk } from '../agents/providers/model-provider';
import { parsePriceTable, type PriceTable } from '../agents/runtime/price-table';

const RISKS: readonly ToolRisk[] = ['low', 'medium', 'high', 'critical'];

@ValidatorConstraint({ name: 'priceTable' })
class PriceTableJson implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return typeof value === 'string' && problemOf(value) === null;
  }

  defaultMessage(args: ValidationArguments): string {
    return problemOf(String(args.value)) ?? 'must be a JSON price table';
  }
}

function problemOf(text: string): string | null {
  try {
    parsePriceTable(text);
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** The agent runtime's variables: the default bot, approvals, plans, tools and the demo model. */
export class AgentEnv extends BackplaneEnv {
  /** The default bot's model provider (`demo` needs no network). */
  @IsString()
  @MinLength(1)
  AGENT_PROVIDER = 'demo';

  @IsString()
  @MinLength(1)
  AGENT_MODEL = 'demo';

  @IsString()
  AGENT_SYSTEM_PROMPT = 'You are a helpful assistant.';

  /** The default bot's tools, by name. */
  @Transform(toList)
  @IsArray()
  @Matches(/^[A-Za-z0-9_.-]{1,64}$/, { each: true })
  AGENT_TOOLS: string[] = ['calculator', 'clock', 'http_get', 'delete_file'];

  @IsIn(RISKS)
  AGENT_APPROVAL_THRESHOLD: ToolRisk = 'high';

  @IsIn(BUSY_POLICIES)
  AGENT_ON_BUSY: BusyPolicy = 'enqueue';

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100)
  AGENT_MAX_TURNS = 8;

  /** How long an approval waits for an answer before `APPROVAL_ON_EXPIRY` applies. */
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(7 * 24 * 3600 * 1000)
  APPROVAL_TIMEOUT_MS = 5 * 60_000;

  /** What an unanswered approval becomes at its expiry. */
  @IsIn(['reject', 'approve'])
  APPROVAL_ON_EXPIRY: 'reject' | 'approve' = 'reject';

  /** How long a proposed plan waits for `plan_response`; an expired plan counts as rejected. */
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(7 * 24 * 3600 * 1000)
  PLAN_TIMEOUT_MS = 30 * 60_000;

  /** Hosts `http_get` may reach (comma-separated, exact names); empty refuses every URL. */
  @Transform(toList)
  @IsArray()
  @IsString({ each: true })
  HTTP_GET_ALLOWED_HOSTS: string[] = [];

  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600_000)
  HTTP_GET_TIMEOUT_MS = 5_000;

  /**
   * The demo model's pause between streamed chunks: longer than MESSAGE_COALESCE_MS (a chunk
   * more than a window after the last one is never merged with it), so its replies reach
   * dashboards as ≥ 3 deltas (PROTOCOL §9).
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(60_000)
  DEMO_CHUNK_DELAY_MS = 120;

  /** USD per 1,000 prompt / completion tokens by model, as JSON (see price-table.ts); empty: providers' own figures. */
  @IsString()
  @Validate(PriceTableJson)
  AGENT_PRICES = '';
}

export interface AgentConfig {
  defaultBot: BotDefinition;
  approvalTimeoutMs: number;
  approvalOnExpiry: 'reject' | 'approve';
  planTimeoutMs: number;
  httpGet: { allowedHosts: string[]; timeoutMs: number };
  demoChunkDelayMs: number;
  prices: PriceTable;
}

export function agentConfigFromEnv(e: AgentEnv): AgentConfig {
  return {
    defaultBot: {
      botId: '*',
      provider: e.AGENT_PROVIDER,
      model: e.AGENT_MODEL,
      systemPrompt: e.AGENT_SYSTEM_PROMPT,
      tools: e.AGENT_TOOLS,
      approvalThreshold: e.AGENT_APPROVAL_THRESHOLD,
      onBusy: e.AGENT_ON_BUSY,
      maxTurns: e.AGENT_MAX_TURNS,
    },
    approvalTimeoutMs: e.APPROVAL_TIMEOUT_MS,
    approvalOnExpiry: e.APPROVAL_ON_EXPIRY,
    planTimeoutMs: e.PLAN_TIMEOUT_MS,
    httpGet: { allowedHosts: e.HTTP_GET_ALLOWED_HOSTS, timeoutMs: e.HTTP_GET_TIMEOUT_MS },
    demoChunkDelayMs: e.DEMO_CHUNK_DELAY_MS,
    prices: parsePriceTable(e.AGENT_PRICES),
  };
}
