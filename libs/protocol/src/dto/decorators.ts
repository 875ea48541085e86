import { Matches, registerDecorator, ValidateIf, type ValidationOptions } from 'class-validator';
import { ID_PATTERN, isStreamName } from '../streams';

/** An entity id (bot, run, session, execution, node…): `[A-Za-z0-9_.-]{1,128}`. */
export function IsEntityId(options?: ValidationOptions): PropertyDecorator {
  return Matches(ID_PATTERN, { message: '$property must match [A-Za-z0-9_.-]{1,128}', ...options });
}

/** A stream name: `bot:<id>` or `dag:<id>` (PROTOCOL.md §2). */
export function IsStreamName(options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({
      name: 'isStreamName',
      target: target.constructor,
      propertyName: propertyName as string,
      options: { message: '$property must be bot:<id> or dag:<id> with an id matching [A-Za-z0-9_.-]{1,128}', ...options },
      validator: { validate: (value: unknown) => isStreamName(value) },
    });
}

/** A plain JSON object (not an array, not null). */
export function IsPlainObject(options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({
      name: 'isPlainObject',
      target: target.constructor,
      propertyName: propertyName as string,
      options: { message: '$property must be an object', ...options },
      validator: {
        validate: (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value),
      },
    });
}

/** Refuses the property when `other` is given too: the two are alternatives. */
export function NotTogetherWith(other: string, options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({
      name: 'notTogetherWith',
      target: target.constructor,
      propertyName: propertyName as string,
      constraints: [other],
      options: { message: `only one of $property and ${other} may be given`, ...options },
      validator: {
        validate: (value: unknown, args) => value === undefined || (args?.object as Record<string, unknown>)[other] === undefined,
      },
    });
}

/**
 * The field may be left out — but not sent as `null`. (class-validator's `@IsOptional`
 * also lets `null` through, which then reaches Redis scripts and jobs as a value.)
 */
export function OptionalField(): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    ValidateIf((o: Record<string | symbol, unknown>) => o[propertyName] !== undefined)(target, propertyName);
}
