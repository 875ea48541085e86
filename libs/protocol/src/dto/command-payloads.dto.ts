import 'reflect-metadata';
import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsBoolean, IsIn, IsInt, IsNumber, IsString, Max, MaxLength, Min, MinLength, ValidateIf, ValidateNested } from 'class-validator';
import { BUSY_POLICIES, type BusyPolicy, type CommandPayload } from '../commands';
import { NODE_FAILURE_POLICIES, type NodeFailurePolicy } from '../events/dag';
import type { StreamName } from '../streams';
import { IsEntityId, IsPlainObject, IsStreamName, NotTogetherWith, OptionalField } from './decorators';

/**
 * One DTO per command payload (PROTOCOL.md §3). Validation runs with `whitelist` and
 * `forbidNonWhitelisted`, so every field must be declared here: unknown fields are refused.
 * `implements` ties each DTO to the payload type in `commands.ts`.
 */

export class StreamDto {
  @IsStreamName()
  stream!: StreamName;
}

export class SubscribeDto extends StreamDto implements CommandPayload<'subscribe'> {
  @OptionalField()
  @IsInt()
  @Min(0)
  sinceSeq?: number;

  @OptionalField()
  @IsString()
  @MinLength(1)
  @MaxLength(64)
  epoch?: string;

  @OptionalField()
  @IsString()
  @MinLength(1)
  @MaxLength(128)
  lastId?: string;
}

export class RefreshTokenDto implements CommandPayload<'refresh_token'> {
  @IsString()
  @MinLength(1)
  @MaxLength(8192)
  token!: string;
}

export class ChatDto implements CommandPayload<'chat'> {
  @IsEntityId()
  botId!: string;

  @IsString()
  @MinLength(1)
  content!: string;

  @OptionalField()
  @IsEntityId()
  sessionId?: string;

  @OptionalField()
  @IsString()
  @MinLength(1)
  @MaxLength(128)
  model?: string;

  @OptionalField()
  @IsString()
  systemPrompt?: string;

  @OptionalField()
  @IsIn(BUSY_POLICIES)
  onBusy?: BusyPolicy;
}

export class CancelDto implements CommandPayload<'cancel'> {
  @IsEntityId()
  runId!: string;
}

export class ApprovalDto implements CommandPayload<'approval'> {
  @IsEntityId()
  approvalId!: string;

  @IsBoolean()
  approved!: boolean;

  @OptionalField()
  @IsString()
  @MaxLength(4000)
  note?: string;
}

export class PlanResponseDto implements CommandPayload<'plan_response'> {
  @IsEntityId()
  planId!: string;

  @IsIn(['approve', 'reject', 'edit'])
  response!: 'approve' | 'reject' | 'edit';

  /** The edited plan; required when `response` is `edit`. */
  @ValidateIf((o: PlanResponseDto) => o.response === 'edit' || o.plan !== undefined)
  @IsString()
  @MinLength(1)
  plan?: string;

  @OptionalField()
  @IsString()
  @MaxLength(4000)
  feedback?: string;
}

export class NewSessionDto implements CommandPayload<'new_session'> {
  @IsEntityId()
  botId!: string;

  @OptionalField()
  @IsString()
  @MaxLength(200)
  title?: string;
}

export class SwitchSessionDto implements CommandPayload<'switch_session'> {
  @IsEntityId()
  sessionId!: string;
}

export class NodeRetryDto {
  @IsInt()
  @Min(1)
  @Max(20)
  attempts!: number;

  @OptionalField()
  @IsInt()
  @Min(0)
  @Max(3_600_000)
  backoffMs?: number;
}

export class DagNodeDto {
  @IsEntityId()
  id!: string;

  @OptionalField()
  @IsString()
  @MaxLength(64)
  kind?: string;

  @OptionalField()
  @IsString()
  @MaxLength(200)
  label?: string;

  @OptionalField()
  @IsPlainObject()
  config?: Record<string, unknown>;

  @OptionalField()
  @ValidateNested()
  @Type(() => NodeRetryDto)
  @IsPlainObject()
  retry?: NodeRetryDto;

  @OptionalField()
  @IsInt()
  @Min(1)
  @Max(86_400_000)
  timeoutMs?: number;

  @OptionalField()
  @IsIn([...NODE_FAILURE_POLICIES])
  onFailure?: NodeFailurePolicy;
}

export class DagEdgeDto {
  @IsEntityId()
  from!: string;

  @IsEntityId()
  to!: string;
}

export class DagDefinitionDto {
  @IsArray()
  @ArrayMaxSize(1000)
  @ValidateNested({ each: true })
  @Type(() => DagNodeDto)
  nodes!: DagNodeDto[];

  @IsArray()
  @ArrayMaxSize(5000)
  @ValidateNested({ each: true })
  @Type(() => DagEdgeDto)
  edges!: DagEdgeDto[];

  @OptionalField()
  @IsInt()
  @Min(1)
  @Max(1_000)
  maxConcurrency?: number;
}

export class StartExecutionDto implements CommandPayload<'start_execution'> {
  /** Exactly one of `dag` (an inline definition) and `dagId` (a stored one) is given. */
  @ValidateIf((o: StartExecutionDto) => o.dagId === undefined || o.dag !== undefined)
  @ValidateNested()
  @Type(() => DagDefinitionDto)
  @IsPlainObject({ message: 'dag must be a definition { nodes, edges } unless dagId is given' })
  dag?: DagDefinitionDto;

  @ValidateIf((o: StartExecutionDto) => o.dag === undefined || o.dagId !== undefined)
  @IsEntityId()
  @NotTogetherWith('dag')
  dagId?: string;

  @OptionalField()
  @IsPlainObject()
  inputs?: Record<string, unknown>;

  @OptionalField()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  budgetUsd?: number;
}

export class HumanDecisionDto implements CommandPayload<'human_decision'> {
  @IsEntityId()
  executionId!: string;

  @IsEntityId()
  nodeId!: string;

  @IsIn(['approve', 'reject', 'modify'])
  decision!: 'approve' | 'reject' | 'modify';

  @OptionalField()
  @IsString()
  @MaxLength(4000)
  feedback?: string;
}

export class ExecutionControlDto implements CommandPayload<'pause_execution'> {
  @IsEntityId()
  executionId!: string;
}

/** `POST /v1/bots/:botId/inbound` (PROTOCOL.md §7): a message from an external platform. */
export class InboundMessageDto {
  @IsString()
  @MinLength(1)
  @MaxLength(64)
  platform!: string;

  @IsString()
  @MinLength(1)
  @MaxLength(256)
  chatId!: string;

  @IsString()
  @MinLength(1)
  content!: string;

  /** The platform's user, recorded as the run's user. */
  @OptionalField()
  @IsString()
  @MaxLength(256)
  userId?: string;

  /** Continue this session instead of the chat's own. */
  @OptionalField()
  @IsEntityId()
  sessionId?: string;
}
