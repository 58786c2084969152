/**
 * Calibration, evaluation and training data as request rows (CSV, Parquet or JSONL with model.yaml's
 * request fields), turned into input tensors by the model's own pipeline: the request schema, the hooks
 * module's preprocess, the feature lookup and model.yaml's preprocess columns, as `/predict` runs them.
 * The label column (named by `--label`, never a request field) becomes class indices or numeric targets.
 */
import { resolve } from 'node:path';
import { countRows, expandInput, openRowSource } from '../../batch/io/batch-input.ts';
import { FieldMapping } from '../../batch/field-mapping.ts';
import type { ModelConfig } from '../../config/model-config.ts';
import { featureInputs } from '../../features/feature-config.ts';
import { FeatureLookup } from '../../pipeline/feature-lookup.ts';
import { loadModelHooks, type ModelHooks } from '../../pipeline/model-hooks.ts';
import { Preprocessor } from '../../pipeline/preprocess.ts';
import { RequestSchema, type RequestRow } from '../../pipeline/request-schema.ts';
import { concatRows, type TensorData } from '../../runtime/tensor.ts';
import { DatasetError } from './dataset-error.ts';
import type { FeedSet } from './feed-set.ts';

/** A model folder's request → tensor stages, opened once for all the data sets of one command. */
export class RequestPipeline {
  private constructor(
    readonly config: ModelConfig,
    private readonly schema: RequestSchema,
    private readonly preprocessor: Preprocessor,
    private readonly hooks: ModelHooks | undefined,
    private readonly features: FeatureLookup | undefined,
  ) {}

  static async open(config: ModelConfig, version: number): Promise<RequestPipeline> {
    const preprocessor = new Preprocessor({ ...config, inputs: [...config.inputs, ...featureInputs(config.features)] });
    const hooks = config.hooks ? await loadModelHooks(config.dir, config.hooks, config.file) : undefined;
    const schema = new RequestSchema(config, hooks?.extraFields);
    const features = await FeatureLookup.open(config, version);
    return new RequestPipeline(config, schema, preprocessor, hooks, features);
  }

  /** Request fields the hooks module accepts besides model.yaml's inputs. */
  get extraFields(): readonly string[] {
    return this.hooks?.extraFields ?? [];
  }

  /** Class names in output order when a postprocess field declares `labels` (string label columns map onto them). */
  get classNames(): string[] | undefined {
    return this.config.postprocess.find((p) => p.labels && p.labels.length > 0)?.labels;
  }

  /** Validated rows → input tensors; a bad row's error names its file, row and field. */
  async tensors(
    raw: readonly Record<string, unknown>[],
    where: (i: number) => string,
  ): Promise<Record<string, TensorData>> {
    let rows: RequestRow[] = raw.map((r, i) => {
      try {
        return this.schema.validate(r);
      } catch (error) {
        throw new DatasetError(`${where(i)}: ${(error as Error).message}`);
      }
    });
    if (this.hooks?.preprocess) rows = rows.map((r) => this.hooks!.preprocess!(r));
    try {
      if (this.features) await this.features.run(rows, (i) => `${where(i)}: `);
      return this.preprocessor.run(rows, (i) => `${where(i)}: `);
    } catch (error) {
      throw new DatasetError((error as Error).message);
    }
  }

  async close(): Promise<void> {
    await this.features?.close();
  }
}

export interface RequestDataOptions {
  /** The column holding the expected answer (class name or index, or a number for regression). */
  label?: string;
  /** Read only the first `limit` rows. */
  limit?: number;
  /** What the data is for, in messages: calibration, eval, training. */
  purpose: string;
}

const NUMBER_TEXT = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;
const CHUNK = 4096;

function labelValue(value: unknown): number | string | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string') {
    if (NUMBER_TEXT.test(value)) return Number(value);
    if (value === 'true' || value === 'false') return value === 'true' ? 1 : 0;
    return value;
  }
  return undefined;
}

/** Labels as classes (whole numbers, or strings mapped onto the model's class names) and numeric targets. */
function labelsOf(
  values: (number | string)[],
  source: string,
  label: string,
  classNames: string[] | undefined,
): Pick<FeedSet, 'labels' | 'labelNames' | 'targets'> {
  if (values.every((v) => typeof v === 'number')) {
    const numbers = values as number[];
    const targets = Float64Array.from(numbers);
    return numbers.every((v) => Number.isInteger(v)) ? { targets, labels: Int32Array.from(numbers) } : { targets };
  }
  if (values.some((v) => typeof v === 'number') && !classNames) {
    throw new DatasetError(`${source}: label column ${label} mixes numbers and text`);
  }
  const names = classNames ?? [...new Set(values.map(String))].sort();
  const labels = Int32Array.from(values, (v, i) => {
    const at = typeof v === 'number' ? v : names.indexOf(v);
    if (at < 0)
      throw new DatasetError(
        `${source} row ${i + 1}: label ${JSON.stringify(v)} is not one of the model's classes (${names.join(', ')})`,
      );
    return at;
  });
  return { labels, labelNames: names };
}

/**
 * Reads request rows from FILE, DIR or GLOB (.csv, .parquet, .jsonl) and builds the model's input tensors
 * with its pipeline. Every row must validate: data for measuring a model is never silently skipped.
 */
export async function loadRequestData(
  path: string,
  pipeline: RequestPipeline,
  options: RequestDataOptions,
): Promise<FeedSet> {
  const { config } = pipeline;
  let files;
  try {
    files = expandInput(path);
  } catch (error) {
    throw new DatasetError((error as Error).message.replace(/^--input: /, ''));
  }
  const parts: Record<string, TensorData>[] = [];
  const labels: (number | string)[] = [];
  let total = 0;
  const limit = options.limit ?? Infinity;
  for (const file of files) {
    if (total >= limit) break;
    const rowsInFile = await countRows(file);
    const source = await openRowSource(file, { start: 0, end: Math.min(rowsInFile, limit - total) });
    try {
      const mapping = new FieldMapping(config.inputs, source.columns, {}, pipeline.extraFields);
      const missing = mapping.missingColumns(source.columns, config.inputs);
      if (missing.length) {
        throw new DatasetError(
          `${options.purpose} data ${file.path} has no column ${missing.join(', ')} (model.yaml ${config.file} requests ${config.inputs.map((i) => i.name).join(', ')}; columns: ${source.columns.map((c) => c.name).join(', ')})`,
        );
      }
      if (options.label && !source.columns.some((c) => c.name === options.label)) {
        throw new DatasetError(
          `${options.purpose} data ${file.path} has no label column ${options.label} (columns: ${source.columns.map((c) => c.name).join(', ')})`,
        );
      }
      for (let batch = await source.next(CHUNK); batch; batch = await source.next(CHUNK)) {
        const { rows, firstRow, parseErrors } = batch;
        const where = (i: number) => `${options.purpose} data ${file.path} row ${firstRow + i + 1}`;
        if (parseErrors?.size) {
          const [i, message] = [...parseErrors][0]!;
          throw new DatasetError(`${where(i)}: ${message}`);
        }
        parts.push(
          await pipeline.tensors(
            rows.map((r) => mapping.request(r)),
            where,
          ),
        );
        if (options.label) {
          rows.forEach((r, i) => {
            const value = labelValue(r[options.label!]);
            if (value === undefined) throw new DatasetError(`${where(i)}: label ${options.label} is empty`);
            labels.push(value);
          });
        }
        total += rows.length;
      }
    } finally {
      await source.close();
    }
  }
  if (total === 0) throw new DatasetError(`${options.purpose} data ${path} holds no rows`);
  const inputs: Record<string, TensorData> = {};
  for (const name of Object.keys(parts[0]!)) inputs[name] = concatRows(parts.map((p) => p[name]!));
  const where =
    files.length === 1
      ? resolve(files[0]!.path) === resolve(path)
        ? path
        : files[0]!.path
      : `${path} (${files.length} files)`;
  return {
    source: where,
    count: total,
    inputs,
    ...(options.label ? labelsOf(labels, where, options.label, pipeline.classNames) : {}),
  };
}
