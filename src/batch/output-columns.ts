import type { InputFieldSpec } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { Postprocessor } from '../pipeline/postprocess.ts';
import type { ColumnKind, SourceColumn } from './io/source-row.ts';

/**
 * One column of the scored output: a kept input column or a prediction field. A kept column read from Parquet
 * carries its exact SQL type (`sqlType`): Parquet output writes it with that type, value for value.
 */
export interface OutputColumn {
  name: string;
  kind: ColumnKind;
  from: 'input' | 'prediction';
  sqlType?: string;
}

function kindOfField(spec: InputFieldSpec | undefined): ColumnKind {
  switch (spec?.type) {
    case 'number':
      return 'double';
    case 'integer':
      return 'integer';
    case 'boolean':
      return 'boolean';
    case 'array':
      return 'json';
    default:
      return 'string';
  }
}

function kindOfSchema(schema: Record<string, unknown>): ColumnKind {
  switch (schema.type) {
    case 'number':
      return 'double';
    case 'integer':
      return 'integer';
    case 'boolean':
      return 'boolean';
    case 'string':
      return 'string';
    default:
      return 'json';
  }
}

/**
 * The output schema, fixed once per job so every part (and every worker's shard) agrees:
 * the kept columns (all input columns unless --keep lists some) followed by the prediction fields.
 */
export function outputColumns(
  version: Pick<ModelVersion, 'config' | 'signature'>,
  source: readonly SourceColumn[],
  keep: readonly string[] | undefined,
  map: Readonly<Record<string, string>>,
): OutputColumn[] {
  const byName = new Map(source.map((c) => [c.name, c]));
  const kept = keep ?? source.map((c) => c.name);
  const fieldOfColumn = new Map(version.config.inputs.map((i) => [map[i.name] ?? i.name, i]));
  const columns: OutputColumn[] = kept.map((name) => {
    const column = byName.get(name);
    if (!column)
      throw new CaliperError(
        'CALIPER_INVALID_INPUT',
        `--keep: the input has no column ${name} (columns: ${source.map((c) => c.name).join(', ')})`,
      );
    const field = fieldOfColumn.get(name);
    const kind = column.text && field ? kindOfField(field) : (column.kind ?? kindOfField(field));
    return { name, kind, from: 'input' as const, ...(column.sqlType !== undefined ? { sqlType: column.sqlType } : {}) };
  });
  for (const spec of version.config.postprocess) {
    if (columns.some((c) => c.name === spec.name)) {
      throw new CaliperError(
        'CALIPER_INVALID_INPUT',
        `--keep: input column ${spec.name} has the name of a prediction field (leave it out of --keep)`,
      );
    }
    columns.push({
      name: spec.name,
      kind: kindOfSchema(Postprocessor.fieldSchema(spec, version.signature.outputs)),
      from: 'prediction',
    });
  }
  return columns;
}
