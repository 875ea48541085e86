import 'reflect-metadata';
import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import type { CommandPayload, CommandType } from '../commands';
import type { FieldViolation } from '../errors';
import {
  ApprovalDto,
  CancelDto,
  ChatDto,
  ExecutionControlDto,
  HumanDecisionDto,
  NewSessionDto,
  PlanResponseDto,
  RefreshTokenDto,
  StartExecutionDto,
  StreamDto,
  SubscribeDto,
  SwitchSessionDto,
} from './command-payloads.dto';

/** The DTO that validates each command type's payload. */
export const COMMAND_PAYLOAD_DTOS: { [T in CommandType]: ClassConstructor<object> } = {
  subscribe: SubscribeDto,
  unsubscribe: StreamDto,
  presence: StreamDto,
  refresh_token: RefreshTokenDto,
  chat: ChatDto,
  cancel: CancelDto,
  approval: ApprovalDto,
  plan_response: PlanResponseDto,
  new_session: NewSessionDto,
  switch_session: SwitchSessionDto,
  start_execution: StartExecutionDto,
  human_decision: HumanDecisionDto,
  pause_execution: ExecutionControlDto,
  resume_execution: ExecutionControlDto,
  cancel_execution: ExecutionControlDto,
};

export type PayloadValidation<T extends CommandType> =
  | { ok: true; value: CommandPayload<T> }
  | { ok: false; violations: FieldViolation[] };

/**
 * Validates a command payload against its DTO. Unknown fields are violations
 * (`whitelistValidation`), and so is a payload that is not a plain object.
 */
export function validateCommandPayload<T extends CommandType>(type: T, payload: unknown): PayloadValidation<T> {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    return { ok: false, violations: [{ field: 'payload', constraint: 'isObject', message: 'payload must be an object' }] };
  }
  const instance = plainToInstance(COMMAND_PAYLOAD_DTOS[type], payload, { enableImplicitConversion: false });
  const errors = validateSync(instance, {
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    validationError: { target: false, value: false },
  });
  if (errors.length > 0) return { ok: false, violations: flattenErrors(errors) };
  // Hand back the caller's plain object, not the DTO instance: it travels on as JSON.
  return { ok: true, value: payload as CommandPayload<T> };
}

function flattenErrors(errors: ValidationError[], prefix = ''): FieldViolation[] {
  const violations: FieldViolation[] = [];
  for (const error of errors) {
    const field = prefix ? `${prefix}.${error.property}` : error.property;
    for (const [constraint, message] of Object.entries(error.constraints ?? {})) {
      violations.push({ field, constraint, message });
    }
    if (error.children?.length) violations.push(...flattenErrors(error.children, field));
  }
  return violations;
}
