import type { InputFieldSpec } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import { exactNumber, parseExactJson } from '../runtime/exact-json.ts';
import type { SourceColumn, SourceRow } from './io/source-row.ts';

const NUMBER_TEXT = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

type Coerce = (value: unknown) => unknown;

/** Text from CSV typed as the request field expects; text that does not parse stays text, so validation names it. */
function textCoercion(spec: InputFieldSpec): Coerce {
  switch (spec.type) {
    case 'number':
      return (v) => (typeof v === 'string' && NUMBER_TEXT.test(v) ? Number(v) : v);
    case 'integer':
      // An integer beyond 2^53 is read whole (a bigint), as /predict reads it; a double would round it.
      return (v) => (typeof v === 'string' && NUMBER_TEXT.test(v) ? exactNumber(v.trim()) : v);
    case 'boolean':
      return (v) =>
        v === 'true' || v === 'TRUE' || v === '1' ? true : v === 'false' || v === 'FALSE' || v === '0' ? false : v;
    case 'array':
      return (v) => {
        if (typeof v !== 'string' || !v.trimStart().startsWith('[')) return v;
        try {
          return parseExactJson(v);
        } catch {
          return v;
        }
      };
    case 'string':
      return (v) => v;
  }
}

/**
 * Which input column feeds each request field (same name unless --map says otherwise), and the coercion of
 * untyped (CSV) text to the field's type. Only declared fields reach the request schema.
 */
export class FieldMapping {
  private readonly entries: { field: string; column: string; coerce: Coerce | undefined }[];

  constructor(
    inputs: readonly InputFieldSpec[],
    columns: readonly SourceColumn[],
    map: Readonly<Record<string, string>>,
    extraFields: readonly string[] = [],
  ) {
    const byName = new Map(columns.map((c) => [c.name, c]));
    for (const field of Object.keys(map)) {
      if (!inputs.some((i) => i.name === field)) {
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          `--map: ${field} is not a request field of the model (expected one of ${inputs.map((i) => i.name).join(', ')})`,
        );
      }
    }
    this.entries = inputs.map((spec) => {
      const column = map[spec.name] ?? spec.name;
      const source = byName.get(column);
      if (!source && spec.required && map[spec.name] !== undefined) {
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          `--map: ${spec.name}=${column}: the input has no column ${column} (columns: ${columns.map((c) => c.name).join(', ')})`,
        );
      }
      return { field: spec.name, column, coerce: source?.text ? textCoercion(spec) : undefined };
    });
    for (const extra of extraFields) this.entries.push({ field: extra, column: extra, coerce: undefined });
  }

  /** The request fields the input lacks entirely (every row would fail). */
  missingColumns(columns: readonly SourceColumn[], inputs: readonly InputFieldSpec[]): string[] {
    const names = new Set(columns.map((c) => c.name));
    return this.entries
      .filter((e) => inputs.find((i) => i.name === e.field)?.required && !names.has(e.column))
      .map((e) => e.column);
  }

  request(row: SourceRow): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const { field, column, coerce } of this.entries) {
      const value = row[column];
      if (value === undefined) continue;
      out[field] = coerce && value !== null ? coerce(value) : value;
    }
    return out;
  }
}
