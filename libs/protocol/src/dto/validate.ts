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

export type PayloadValidation<T extends CommandType> = { ok: true; value: CommandPayload<T> } | { ok: false; violations: FieldViolation[] };

/**
 * Validates a command payload against its DTO. Unknown fields are violations
 * (`whitelistValidation`), and so is a payload that is not a plain object.
 */
export function validateCommandPayload<T extends CommandType>(type: T, payload: unknown): PayloadValidation<T> {
  return validateAs<CommandPayload<T>>(COMMAND_PAYLOAD_DTOS[type], payload, 'payload');
}

/** Validates any plain object against a DTO class of this contract, unknown fields refused. */
export function validateAs<T>(
  dto: ClassConstructor<object>,
  value: unknown,
  name = 'body',
): { ok: true; value: T } | { ok: false; violations: FieldViolation[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, violations: [{ field: name, constraint: 'isObject', message: `${name} must be an object` }] };
  }
  const instance = plainToInstance(dto, value, { enableImplicitConversion: false });
  const errors = validateSync(instance, {
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    validationError: { target: false, value: false },
  });
  if (errors.length > 0) return { ok: false, violations: flattenErrors(errors) };
  // Hand back the caller's plain object, not the DTO instance: it travels on as JSON.
  return { ok: true, value: value as T };
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
