import type { DuckDBType, DuckDBTypeId } from '@duckdb/node-api';
import type { InputFieldSpec, PostprocessFieldSpec, ScalarStep, TensorSpec } from '../../config/model-config.ts';
import type { ModelVersion } from '../../lifecycle/model-version.ts';
import type { BatchJobSpec } from '../batch-job.ts';
import { duckdb, sqlIdentifier, sqlString } from '../io/duckdb-engine.ts';
import { PARSE_ERROR_COLUMN, type ScanSource } from '../io/input-scan.ts';

/**
 * The columnar fast path of `caliper batch`: model.yaml's schema, preprocess and postprocess compiled to work on
 * whole column arrays read from DuckDB. Only what the built-in transforms express is compiled; anything else
 * (hooks, a feature store, array or string tensors, softmax/argmax/top-k outputs) keeps the row path. Every format
 * is read from Parquet: the input itself, or the staged copy DuckDB parsed a CSV or JSONL input into.
 */

/** One request field read as a DOUBLE column: numbers as themselves, strings as their dictionary code (-1: not in it). Null reads as NaN. */
export interface FieldColumn {
  spec: InputFieldSpec;
  sql: string;
  /** Strings only: the codes' meaning (the enum, then the categories the transforms know). */
  dictionary?: string[];
  /** Strings with an enum: 1 where the code is an allowed value. */
  allowed?: Uint8Array;
}

export type TensorColumn =
  /** steps: model.yaml's steps, applied over the column by applyScalarSteps (the row path's arithmetic). */
  | { kind: 'numeric'; field: number; steps: readonly ScalarStep[] }
  /** slot: the one-hot position of each dictionary code (-1: none); unknown codes defer to the row path unless zeros. */
  | { kind: 'one_hot'; field: number; width: number; slot: Int32Array; zerosOnUnknown: boolean }
  /** value: the table value of each dictionary code (NaN: not in the table). */
  | { kind: 'lookup'; field: number; value: Float64Array; unknown: number | undefined };

export interface TensorPlan {
  name: string;
  dtype: 'float32' | 'float64';
  width: number;
  dims: number[];
  columns: TensorColumn[];
}

/** A prediction field computed over arrays: a value picked from an output (or an earlier field), optionally squashed or thresholded. */
export interface PredictionField {
  name: string;
  boolean: boolean;
  source: { output: string; stride: number; index: number } | { field: number };
  sigmoid: boolean;
  threshold: number | undefined;
}

export interface ColumnarPlan {
  source: ScanSource;
  /** The staged rows carry a parse error column (JSONL lines that were no JSON object): those rows take the row path. */
  parseErrors: boolean;
  fields: FieldColumn[];
  tensors: TensorPlan[];
  predictions: PredictionField[];
  outputNames: string[];
  /** SQL for each output column taken from the input, in its source type (in spec.columns order, before the predictions). */
  keptSql: string[];
}

const NUMERIC_SOURCES = new Set<DuckDBTypeId>([
  duckdb.DuckDBTypeId.TINYINT,
  duckdb.DuckDBTypeId.SMALLINT,
  duckdb.DuckDBTypeId.INTEGER,
  duckdb.DuckDBTypeId.BIGINT,
  duckdb.DuckDBTypeId.UTINYINT,
  duckdb.DuckDBTypeId.USMALLINT,
  duckdb.DuckDBTypeId.UINTEGER,
  duckdb.DuckDBTypeId.FLOAT,
  duckdb.DuckDBTypeId.DOUBLE,
]);

const OUTPUT_SQL_TYPES = { double: 'DOUBLE', integer: 'BIGINT', boolean: 'BOOLEAN', string: 'VARCHAR' } as const;

/** Thrown inside planning to say why a model or file keeps the row path. */
class RowPathOnly extends Error {}

function need(condition: boolean, why: string): asserts condition {
  if (!condition) throw new RowPathOnly(why);
}

function fieldColumn(
  spec: InputFieldSpec,
  column: string,
  type: DuckDBType | undefined,
  categories: readonly string[],
): FieldColumn {
  need(type !== undefined, `no column ${column}`);
  const id = sqlIdentifier(column);
  if (spec.type === 'number' || spec.type === 'integer') {
    // Text (a CSV column with a value the type sniffer could not read as a number): what does not parse reads as null,
    // so the row takes the row path, which names the text.
    if (type.typeId === duckdb.DuckDBTypeId.VARCHAR) return { spec, sql: `TRY_CAST(${id} AS DOUBLE)` };
    need(NUMERIC_SOURCES.has(type.typeId), `${column} is not a numeric column`);
    return { spec, sql: `CAST(${id} AS DOUBLE)` };
  }
  if (spec.type === 'boolean') {
    need(type.typeId === duckdb.DuckDBTypeId.BOOLEAN, `${column} is not a BOOLEAN column`);
    return { spec, sql: `CAST(${id} AS DOUBLE)` };
  }
  need(
    spec.type === 'string' && type.typeId === duckdb.DuckDBTypeId.VARCHAR,
    `${column} is not a VARCHAR column for a string field`,
  );
  const dictionary = [...new Set([...(spec.enum ?? []), ...categories])];
  // A MAP literal's lookup, not a CASE of one WHEN per value: DuckDB tests the WHENs one after another (1M rows of 8
  // categories, one thread: 32-37 ms of CPU for the CASE, 12-14 ms for the lookup; the same codes, NULL and unknown
  // values included).
  const codes = dictionary.map((value, code) => `${sqlString(value)}: ${code}`).join(', ');
  const unknown = `CASE WHEN ${id} IS NULL THEN NULL ELSE -1 END`;
  const sql =
    dictionary.length > 0
      ? `CAST(coalesce(MAP {${codes}}[${id}], ${unknown}) AS DOUBLE)`
      : `CAST(${unknown} AS DOUBLE)`;
  const allowed = spec.enum ? Uint8Array.from(dictionary, (value) => (spec.enum!.includes(value) ? 1 : 0)) : undefined;
  return { spec, sql, dictionary, ...(allowed ? { allowed } : {}) };
}

function categoriesOf(tensors: readonly TensorSpec[], field: string): string[] {
  return tensors.flatMap((t) =>
    t.columns.flatMap((c) =>
      c.field !== field ? [] : c.kind === 'one_hot' ? c.categories : c.kind === 'lookup' ? Object.keys(c.table) : [],
    ),
  );
}

function tensorPlan(spec: TensorSpec, fields: readonly FieldColumn[]): TensorPlan {
  need(spec.dtype === 'float32' || spec.dtype === 'float64', `tensor ${spec.name} is ${spec.dtype}`);
  const fieldIndex = (name: string): number => fields.findIndex((f) => f.spec.name === name);
  const columns = spec.columns.map((column): TensorColumn => {
    const field = fieldIndex(column.field);
    const dictionary = fields[field]!.dictionary ?? [];
    switch (column.kind) {
      case 'numeric':
        return { kind: 'numeric', field, steps: column.steps };
      case 'one_hot':
        return {
          kind: 'one_hot',
          field,
          width: column.categories.length,
          slot: Int32Array.from(dictionary, (v) => column.categories.indexOf(v)),
          zerosOnUnknown: column.unknown === 'zeros',
        };
      case 'lookup':
        return {
          kind: 'lookup',
          field,
          value: Float64Array.from(dictionary, (v) => (Object.hasOwn(column.table, v) ? column.table[v]! : NaN)),
          unknown: column.unknown === 'error' ? undefined : column.unknown,
        };
      case 'text':
        throw new RowPathOnly(`tensor ${spec.name} takes text`);
    }
  });
  const width = columns.reduce((sum, c) => sum + (c.kind === 'one_hot' ? c.width : 1), 0);
  return { name: spec.name, dtype: spec.dtype, width, dims: spec.shape ?? [width], columns };
}

function predictionField(
  spec: PostprocessFieldSpec,
  version: ModelVersion,
  earlier: readonly PredictionField[],
): PredictionField {
  need(
    !spec.softmax && !spec.argmax && spec.topK === undefined && !spec.reshape && !spec.labels,
    `postprocess.${spec.name} is not a scalar pick`,
  );
  let source: PredictionField['source'];
  if ('output' in spec.source) {
    const name = spec.source.output;
    const output = version.signature.outputs.find((o) => o.name === name);
    need(
      output !== undefined && (output.type === 'float32' || output.type === 'float64'),
      `output ${name} is not float`,
    );
    const stride = output.shape.slice(1).reduce((a, b) => a * b, 1);
    need(
      stride > 0 && (spec.index !== undefined ? spec.index < stride : stride === 1),
      `postprocess.${spec.name} does not pick one value`,
    );
    source = { output: name, stride, index: spec.index ?? 0 };
  } else {
    const from = spec.source.field;
    const field = earlier.findIndex((p) => p.name === from);
    need(
      field >= 0 && !earlier[field]!.boolean && (spec.index ?? 0) === 0,
      `postprocess.${spec.name} reads a non-numeric field`,
    );
    source = { field };
  }
  return {
    name: spec.name,
    boolean: spec.threshold !== undefined,
    source,
    sigmoid: spec.sigmoid ?? false,
    threshold: spec.threshold,
  };
}

/** The input file's columns and DuckDB types (the first file's columns fixed spec.columns; later files may differ). */
export interface ParquetSchema {
  names: string[];
  types: DuckDBType[];
}

/** The columnar plan for one input file, or the reason it keeps the row path. */
export function columnarPlan(
  version: ModelVersion,
  spec: BatchJobSpec,
  source: ScanSource,
  schema: ParquetSchema,
): ColumnarPlan | string {
  try {
    const config = version.config;
    need(!version.hooks && !version.features, 'hooks or features');
    need(version.batchable, 'no batch dimension');
    need(!schema.names.includes('file_row_number'), 'a column named file_row_number');
    const typeOf = new Map(schema.names.map((n, i) => [n, schema.types[i]!]));
    const fields = config.inputs.map((input) => {
      need(input.type !== 'array', `${input.name} is an array`);
      const column = spec.map[input.name] ?? input.name;
      return fieldColumn(input, column, typeOf.get(column), categoriesOf(config.tensors, input.name));
    });
    const tensors = config.tensors.map((t) => tensorPlan(t, fields));
    const predictions: PredictionField[] = [];
    for (const p of config.postprocess) predictions.push(predictionField(p, version, predictions));
    const keptSql = spec.columns
      .filter((c) => c.from === 'input')
      .map((c) => {
        const type = typeOf.get(c.name);
        need(type !== undefined, `kept column ${c.name} is missing`);
        // A column of the job's exact type goes through as it is: DuckDB copies it, type and value.
        if (c.sqlType !== undefined) {
          need(type.toString() === c.sqlType, `kept column ${c.name} is not of type ${c.sqlType}`);
          return `i.${sqlIdentifier(c.name)}`;
        }
        // Otherwise by its kind, as the row path writes it (text that is no number: null).
        need(
          c.kind !== 'json' &&
            (NUMERIC_SOURCES.has(type.typeId) ||
              type.typeId === duckdb.DuckDBTypeId.BOOLEAN ||
              type.typeId === duckdb.DuckDBTypeId.VARCHAR),
          `kept column ${c.name} is not a plain type`,
        );
        return `TRY_CAST(i.${sqlIdentifier(c.name)} AS ${OUTPUT_SQL_TYPES[c.kind]}) AS ${sqlIdentifier(c.name)}`;
      });
    const outputNames = [...new Set(predictions.flatMap((p) => ('output' in p.source ? [p.source.output] : [])))];
    return { source, parseErrors: typeOf.has(PARSE_ERROR_COLUMN), fields, tensors, predictions, outputNames, keptSql };
  } catch (error) {
    if (error instanceof RowPathOnly) return error.message;
    throw error;
  }
}
