import { resolve } from 'node:path';
import { CaliperError } from '../errors.ts';
import type { BatchModelDescription } from './batch-model-description.ts';
import { compressionOfPath, formatOfPath, type BatchFormat, type ParquetCompression } from './io/batch-format.ts';
import { expandInput, type InputFile } from './io/batch-input.ts';
import { probeColumns } from './io/input-scan.ts';
import type { SourceColumn } from './io/source-row.ts';
import { jobFingerprint, type BatchJobSpec } from './batch-job.ts';
import type { ErrorPolicy } from './chunk-scorer.ts';
import { declarableSqlType, sourceColumnsOf } from './io/parquet-reader.ts';
import { outputColumns, type OutputColumn } from './output-columns.ts';
import { isModelUri } from '../registry/model-uri.ts';
import { isPostgresUri } from '../registry/registry-location.ts';

export interface BatchRequest {
  model: string;
  input: string;
  inputFormat?: BatchFormat;
  output: string;
  format?: BatchFormat;
  batchSize: number;
  partRows: number;
  onError: ErrorPolicy;
  keep?: string[];
  map?: Record<string, string>;
  errorsFile?: string;
  mode: 'local' | 'distributed';
  instances?: number;
  threads?: number;
  registry?: string;
  /** Write a folder of COL=VALUE/ partitions of this output column. */
  partitionBy?: string;
  compression?: ParquetCompression;
}

/** Turns the command's options into a job spec: input files, output paths and the output schema. */
export async function planBatchJob(version: BatchModelDescription, request: BatchRequest): Promise<BatchJobSpec> {
  const inputs = expandInput(request.input, request.inputFormat);
  const output = resolve(request.output);
  const outputExtensionFormat = formatOfPath(output);
  if (request.format && outputExtensionFormat && request.format !== outputExtensionFormat) {
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--format: ${request.format} does not match the extension of --output ${request.output}`,
    );
  }
  const outputCompression = compressionOfPath(output);
  if (outputCompression !== undefined && outputExtensionFormat === undefined) {
    const named = formatOfPath(output.slice(0, output.lastIndexOf('.')));
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      named === 'parquet'
        ? `--output ${request.output}: a Parquet file is compressed inside, not as a whole; name it .parquet and pass --compression ${outputCompression}`
        : `--output ${request.output}: a compressed output names its format before .gz or .zst (out.csv.gz, out.jsonl.zst)`,
    );
  }
  if (outputCompression !== undefined && request.partitionBy !== undefined)
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--partition-by: writes a folder of COL=VALUE/ files, and --output ${request.output} names one compressed file`,
    );
  const format = request.format ?? outputExtensionFormat ?? inputs[0]!.format;
  if (request.compression && format !== 'parquet')
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--compression: applies to Parquet output, and the output format is ${format}`,
    );
  // A partitioned output is a folder of COL=VALUE/ folders, assembled at the end from parts kept beside it.
  const outputFile = outputExtensionFormat && !request.partitionBy ? output : undefined;
  const partsDir = outputFile || request.partitionBy ? `${output}.parts` : output;
  const errorsFile = resolve(
    request.errorsFile ?? (outputFile || request.partitionBy ? `${output}.errors.jsonl` : `${output}/_errors.jsonl`),
  );
  if (inputs.some((f) => f.path === output || f.path === outputFile))
    throw new CaliperError('CALIPER_INVALID_INPUT', `--output: ${request.output} is also an input`);

  const probe = await probeColumns(inputs[0]!);
  // Text formats: string columns are text, typed by the model's fields (a CSV column of numbers with one stray word).
  const text = inputs[0]!.format !== 'parquet';
  const sourceColumns: SourceColumn[] = sourceColumnsOf(probe.names, probe.types, text);
  const columns = outputColumns(version, sourceColumns, request.keep, request.map ?? {});
  if (request.partitionBy !== undefined && !columns.some((c) => c.name === request.partitionBy)) {
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--partition-by: no output column ${request.partitionBy} (output columns: ${columns.map((c) => c.name).join(', ')})`,
    );
  }
  await keepExactTypesAgreed(columns, inputs);
  const spec: Omit<BatchJobSpec, 'id'> = {
    // A stage or alias is pinned to the version it names now, so every chunk and shard scores with the same model.
    model: isModelUri(request.model) ? `models:/${version.name}/${version.version}` : resolve(request.model),
    inputs,
    output,
    format,
    partsDir,
    errorsFile,
    batchSize: request.batchSize,
    partRows: request.partRows,
    onError: request.onError,
    map: request.map ?? {},
    columns,
    mode: request.mode,
    ...(outputFile ? { outputFile } : {}),
    ...(request.partitionBy !== undefined ? { partitionBy: request.partitionBy } : {}),
    ...(request.compression ? { compression: request.compression } : {}),
    ...(request.keep ? { keep: request.keep } : {}),
    ...(request.instances !== undefined ? { instances: request.instances } : {}),
    ...(request.threads !== undefined ? { threads: request.threads } : {}),
    ...(request.registry !== undefined && isModelUri(request.model)
      ? { registry: isPostgresUri(request.registry) ? request.registry : resolve(request.registry) }
      : {}),
  };
  return { id: jobFingerprint(spec).slice(0, 16), ...spec };
}

/**
 * A kept column keeps its exact type only where every Parquet input file has it with that type (and the type can
 * be declared in SQL: a union read back from Parquet is a struct with an unnamed field, which cannot); where files
 * disagree (DECIMAL(9,2) in one, DECIMAL(18,4) in another), the column is written by its kind, as every
 * input is, so all parts agree on one schema.
 */
async function keepExactTypesAgreed(columns: OutputColumn[], inputs: readonly InputFile[]): Promise<void> {
  if (!columns.some((c) => c.sqlType !== undefined)) return;
  // Exact types are Parquet's: a CSV or JSONL input's types are inferred, and its staged copy may infer others.
  if (inputs.some((input) => input.format !== 'parquet')) {
    for (const column of columns) delete column.sqlType;
    return;
  }
  for (const column of columns)
    if (column.sqlType !== undefined && !(await declarableSqlType(column.sqlType))) delete column.sqlType;
  for (const input of inputs.slice(1)) {
    const probe = await probeColumns(input);
    const types = new Map(probe.names.map((name, i) => [name, probe.types[i]!.toString()]));
    for (const column of columns)
      if (column.sqlType !== undefined && types.get(column.name) !== column.sqlType) delete column.sqlType;
  }
}
