import type { InputFieldSpec, ModelConfig } from '../config/model-config.ts';
import { describeValue } from '../config/config-reader.ts';
import { invalidInput } from '../errors.ts';

/** One request row after validation: every declared field present (defaults filled), nothing else. */
export type RequestRow = Record<string, unknown>;

type FieldCheck = (value: unknown, where: string) => unknown;

function numberCheck(spec: InputFieldSpec, integer: boolean): FieldCheck {
  const kind = integer ? 'an integer' : 'a number';
  const { minimum, maximum } = spec;
  const bounds =
    minimum !== undefined && maximum !== undefined
      ? ` between ${minimum} and ${maximum}`
      : minimum !== undefined
        ? ` >= ${minimum}`
        : maximum !== undefined
          ? ` <= ${maximum}`
          : '';
  return (value, where) => {
    // An integer literal beyond 2^53 arrives as a bigint (exact-json.ts): kept whole for an integer field (the
    // preprocess tensor decides whether it fits), read as the nearest double for a number field.
    if (typeof value === 'bigint') {
      if ((minimum !== undefined && value < minimum) || (maximum !== undefined && value > maximum))
        throw invalidInput(`${where}: expected ${kind}${bounds}, got ${value}`);
      return integer ? value : Number(value);
    }
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      (integer && !Number.isInteger(value)) ||
      (minimum !== undefined && value < minimum) ||
      (maximum !== undefined && value > maximum)
    ) {
      const finite = typeof value === 'number' && !Number.isFinite(value) ? ' (NaN and Infinity are not allowed)' : '';
      throw invalidInput(`${where}: expected ${kind}${bounds}, got ${describeValue(value)}${finite}`);
    }
    return value;
  };
}

function fieldCheck(spec: InputFieldSpec): FieldCheck {
  switch (spec.type) {
    case 'number':
      return numberCheck(spec, false);
    case 'integer':
      return numberCheck(spec, true);
    case 'boolean':
      return (value, where) => {
        if (typeof value !== 'boolean')
          throw invalidInput(`${where}: expected true or false, got ${describeValue(value)}`);
        return value;
      };
    case 'string': {
      const allowed = spec.enum ? new Set(spec.enum) : undefined;
      const expected = spec.enum ? `one of ${spec.enum.join(', ')}` : 'a string';
      return (value, where) => {
        if (typeof value !== 'string')
          throw invalidInput(`${where}: expected ${expected}, got ${describeValue(value)}`);
        if (allowed && !allowed.has(value))
          throw invalidInput(
            `${where}: unknown category ${describeValue(value)} (expected one of ${spec.enum!.join(', ')})`,
          );
        return value;
      };
    }
    case 'array': {
      const integer = spec.items === 'integer';
      const element = numberCheck({ ...spec, type: integer ? 'integer' : 'number' }, integer);
      const length = spec.length;
      const minLength = spec.minLength ?? (length === undefined ? 0 : length);
      const maxLength = spec.maxLength ?? length ?? Infinity;
      const count =
        length !== undefined
          ? `${length}`
          : maxLength !== Infinity
            ? `${minLength} to ${maxLength}`
            : minLength > 0
              ? `at least ${minLength}`
              : undefined;
      const minimum = spec.minimum ?? -Infinity;
      const maximum = spec.maximum ?? Infinity;
      return (value, where) => {
        if (!Array.isArray(value))
          throw invalidInput(
            `${where}: expected an array${count ? ` of ${count} numbers` : ''}, got ${describeValue(value)}`,
          );
        if (value.length < minLength || value.length > maxLength)
          throw invalidInput(`${where}: expected an array of ${count} numbers, got ${value.length}`);
        // The element's location string is built only for the one that fails: an image has hundreds of elements.
        for (let i = 0; i < value.length; i++) {
          const v: unknown = value[i];
          if (typeof v === 'bigint') {
            value[i] = element(v, `${where}[${i}]`);
            continue;
          }
          if (
            typeof v !== 'number' ||
            !Number.isFinite(v) ||
            v < minimum ||
            v > maximum ||
            (integer && !Number.isInteger(v))
          )
            element(v, `${where}[${i}]`);
        }
        return value;
      };
    }
  }
}

/** Validates and normalizes request rows for one model; errors name the field and what was expected. */
export class RequestSchema {
  private readonly fields: { name: string; check: FieldCheck; required: boolean; default?: unknown }[];
  private readonly known: Set<string>;
  private readonly rejectUnknown: boolean;
  private readonly fieldList: string;
  /** Fields a hooks module accepts besides the declared inputs; passed through unchecked. */
  private readonly extraFields: readonly string[];

  constructor(config: Pick<ModelConfig, 'inputs' | 'unknownFields'>, extraFields: readonly string[] = []) {
    this.fields = config.inputs.map((spec) => ({
      name: spec.name,
      check: fieldCheck(spec),
      required: spec.required,
      default: spec.default,
    }));
    this.known = new Set([...config.inputs.map((i) => i.name), ...extraFields]);
    this.rejectUnknown = config.unknownFields === 'reject';
    this.fieldList = config.inputs.map((i) => i.name).join(', ');
    this.extraFields = extraFields;
  }

  /** `prefix` locates the row in the request, e.g. "instances[3]." (empty for a single object). */
  validate(value: unknown, prefix = ''): RequestRow {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw invalidInput(
        `${prefix || 'body'}: expected a JSON object with fields ${this.fieldList}, got ${describeValue(value)}`,
      );
    }
    const input = value as Record<string, unknown>;
    if (this.rejectUnknown) {
      for (const key in input) {
        if (!this.known.has(key))
          throw invalidInput(`${prefix}${key}: unknown field (expected only ${this.fieldList})`);
      }
    }
    const row: RequestRow = {};
    for (const field of this.fields) {
      const v = input[field.name];
      if (v === undefined || (v === null && !field.required)) {
        if (field.required) throw invalidInput(`${prefix}${field.name}: required field is missing`);
        if (field.default !== undefined) row[field.name] = field.default;
        continue;
      }
      row[field.name] = field.check(v, `${prefix}${field.name}`);
    }
    for (const name of this.extraFields) if (input[name] !== undefined) row[name] = input[name];
    return row;
  }
}
