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
  const key = flatPayloadKey(type, payload);
  const known = key === undefined ? undefined : flatAnswers.get(key);
  if (known !== undefined) return known === VALID ? { ok: true, value: payload as CommandPayload<T> } : { ok: false, violations: known };
  const validation = validateAs<CommandPayload<T>>(COMMAND_PAYLOAD_DTOS[type], payload, 'payload');
  if (key !== undefined) {
    flatAnswers.set(key, validation.ok ? VALID : (Object.freeze(validation.violations.map((v) => Object.freeze(v))) as FieldViolation[]));
    if (flatAnswers.size > FLAT_ANSWERS) flatAnswers.delete(flatAnswers.keys().next().value as string);
  }
  return validation;
}

/**
 * Answers for flat payloads — every field a string, a boolean, null or a finite number — by
 * command type and JSON text. Such a payload is all its JSON text says, and validation is a
 * function of the payload, so a burst of identical commands (a pod's sockets resubscribing
 * after a restart) is validated once. Anything nested, binary or large is validated each time.
 */
const flatAnswers = new Map<string, typeof VALID | FieldViolation[]>();
const VALID = 'valid';
const FLAT_ANSWERS = 1_024;
const FLAT_MAX_FIELDS = 8;
const FLAT_MAX_TEXT = 512;

function flatPayloadKey(type: CommandType, payload: unknown): string | undefined {
  if (!isJsonObject(payload)) return undefined;
  const values = Object.values(payload);
  if (values.length > FLAT_MAX_FIELDS) return undefined;
  for (const value of values) {
    if (value === null || typeof value === 'string' || typeof value === 'boolean') continue;
    // -0 prints as 0, and NaN or Infinity as null: their text would name another payload.
    if (typeof value === 'number' && Number.isFinite(value) && !Object.is(value, -0)) continue;
    return undefined;
  }
  const text = JSON.stringify(payload);
  return text.length > FLAT_MAX_TEXT ? undefined : `${type}\u0000${text}`;
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
