import 'reflect-metadata';
import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import type { CommandPayload, CommandType } from '../commands';
import type { FieldViolation } from '../errors';
import { checkJsonShape, isJsonObject, joinPath } from '../json-shape';
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
 * The constraint of the violation a validator bug turns into (a thrown exception inside
 * class-transformer or class-validator): the caller still answers VALIDATION_FAILED.
 */
export const VALIDATOR_FAILED = 'validatable';

/**
 * Validates a command payload against its DTO. Unknown fields are violations
 * (`whitelistValidation`), and so is a payload that is not a plain object.
 */
export function validateCommandPayload<T extends CommandType>(type: T, payload: unknown): PayloadValidation<T> {
  return validateAs<CommandPayload<T>>(COMMAND_PAYLOAD_DTOS[type], payload, 'payload');
}

/**
 * Validates any plain object against a DTO class of this contract, unknown fields refused.
 * Never throws: whatever the value holds, the answer is ok or a list of violations.
 *
 * The structural check runs first, because class-transformer and class-validator are not safe
 * on hostile JSON: both recurse (a payload nested thousands deep overflows the stack), and an
 * own `constructor` key is taken for the object's class (see RESERVED_KEYS). After them,
 * `droppedFields` catches the unknown fields class-transformer hides from the whitelist.
 */
export function validateAs<T>(
  dto: ClassConstructor<object>,
  value: unknown,
  name = 'body',
): { ok: true; value: T } | { ok: false; violations: FieldViolation[] } {
  try {
    if (!isJsonObject(value)) {
      return { ok: false, violations: [{ field: name, constraint: 'isObject', message: `${name} must be an object` }] };
    }
    const shape = checkJsonShape(value);
    if (shape.length > 0) return { ok: false, violations: shape };
    const instance = plainToInstance(dto, value, { enableImplicitConversion: false });
    const errors = validateSync(instance, {
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
      validationError: { target: false, value: false },
    });
    const violations = [...flattenErrors(errors), ...droppedFields(value, instance)];
    if (violations.length > 0) return { ok: false, violations };
  } catch (error) {
    // A bug in a validator, never the caller's fault: refused all the same, and reported.
    process.emitWarning(`validating ${dto.name} threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, {
      code: 'RTGW_VALIDATOR_FAILED',
    });
    return { ok: false, violations: [{ field: name, constraint: VALIDATOR_FAILED, message: `${name} could not be validated` }] };
  }
  // Hand back the caller's plain object, not the DTO instance: it travels on as JSON.
  return { ok: true, value: value as T };
}

function flattenErrors(errors: ValidationError[], prefix = ''): FieldViolation[] {
  const violations: FieldViolation[] = [];
  for (const error of errors) {
    const field = joinPath(prefix, error.property);
    for (const [constraint, message] of Object.entries(error.constraints ?? {})) {
      violations.push({ field, constraint, message });
    }
    if (error.children?.length) violations.push(...flattenErrors(error.children, field));
  }
  return violations;
}

/**
 * Fields of `raw` that class-transformer left out of the DTO instance, so that
 * `forbidNonWhitelisted` never saw them: it skips every key that names an inherited method
 * (`toString`, `valueOf`, `hasOwnProperty`…). No DTO declares such a field, so each is an
 * unknown field. Only DTO levels are compared (free-form objects are data); the shape check
 * has bounded the depth, so the recursion is too.
 */
function droppedFields(raw: unknown, instance: unknown, prefix = ''): FieldViolation[] {
  if (typeof raw !== 'object' || raw === null || typeof instance !== 'object' || instance === null) return [];
  if (Array.isArray(raw)) {
    return Array.isArray(instance) ? raw.flatMap((item: unknown, i) => droppedFields(item, instance[i], joinPath(prefix, i))) : [];
  }
  const prototype: unknown = Object.getPrototypeOf(instance);
  if (prototype === Object.prototype || prototype === null) return [];
  const violations: FieldViolation[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (Object.prototype.hasOwnProperty.call(instance, key))
      violations.push(...droppedFields(value, (instance as Record<string, unknown>)[key], joinPath(prefix, key)));
    else violations.push({ field: joinPath(prefix, key), constraint: 'whitelistValidation', message: `property ${key} should not exist` });
  }
  return violations;
}
