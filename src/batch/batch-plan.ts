import { resolve } from 'node:path';
import { CaliperError } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { formatOfPath, type BatchFormat } from './io/batch-format.ts';
import { expandInput, openRowSource } from './io/batch-input.ts';
import { jobFingerprint, type BatchJobSpec } from './batch-job.ts';
import type { ErrorPolicy } from './chunk-scorer.ts';
import { declarableSqlType, parquetColumnTypes } from './io/parquet-reader.ts';
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
}

/** Turns the command's options into a job spec: input files, output paths and the output schema. */
export async function planBatchJob(version: ModelVersion, request: BatchRequest): Promise<BatchJobSpec> {
  const inputs = expandInput(request.input, request.inputFormat);
  const output = resolve(request.output);
  const outputExtensionFormat = formatOfPath(output);
  if (request.format && outputExtensionFormat && request.format !== outputExtensionFormat) {
    throw new CaliperError('CALIPER_INVALID_INPUT', `--format: ${request.format} does not match the extension of --output ${request.output}`);
  }
  const format = request.format ?? outputExtensionFormat ?? inputs[0]!.format;
  const outputFile = outputExtensionFormat ? output : undefined;
  const partsDir = outputFile ? `${outputFile}.parts` : output;
  const errorsFile = resolve(request.errorsFile ?? (outputFile ? `${outputFile}.errors.jsonl` : `${output}/_errors.jsonl`));
  if (inputs.some((f) => f.path === output || f.path === outputFile)) throw new CaliperError('CALIPER_INVALID_INPUT', `--output: ${request.output} is also an input`);

  const probe = await openRowSource(inputs[0]!, { start: 0, end: Infinity });
  let columns;
  try {
    columns = outputColumns(version, probe.columns, request.keep, request.map ?? {});
  } finally {
    await probe.close();
  }
  await keepExactTypesAgreed(columns, inputs);
  const spec: Omit<BatchJobSpec, 'id'> = {
    // A stage or alias is pinned to the version it names now, so every chunk and shard scores with the same model.
    model: isModelUri(request.model) ? `models:/${version.name}/${version.version}` : resolve(request.model),
    inputs, output, format, partsDir, errorsFile,
    batchSize: request.batchSize,
    partRows: request.partRows,
    onError: request.onError,
    map: request.map ?? {},
    columns,
    mode: request.mode,
    ...(outputFile ? { outputFile } : {}),
    ...(request.keep ? { keep: request.keep } : {}),
    ...(request.instances !== undefined ? { instances: request.instances } : {}),
    ...(request.threads !== undefined ? { threads: request.threads } : {}),
    ...(request.registry !== undefined && isModelUri(request.model) ? { registry: isPostgresUri(request.registry) ? request.registry : resolve(request.registry) } : {}),
  };
  return { id: jobFingerprint(spec).slice(0, 16), ...spec };
}

/**
 * A kept column keeps its exact type only where every Parquet input file has it with that type (and the type can
 * be declared in SQL: a union read back from Parquet is a struct with an unnamed field, which cannot); where files
 * disagree (DECIMAL(9,2) in one, DECIMAL(18,4) in another), the column is written by its kind, as every
 * input is, so all parts agree on one schema.
 */
async function keepExactTypesAgreed(columns: OutputColumn[], inputs: readonly { path: string; format: BatchFormat }[]): Promise<void> {
  if (!columns.some((c) => c.sqlType !== undefined)) return;
  for (const column of columns) if (column.sqlType !== undefined && !(await declarableSqlType(column.sqlType))) delete column.sqlType;
  for (const input of inputs.slice(1)) {
    const types = input.format === 'parquet' ? await parquetColumnTypes(input.path) : new Map<string, string>();
    for (const column of columns) if (column.sqlType !== undefined && types.get(column.name) !== column.sqlType) delete column.sqlType;
  }
}
