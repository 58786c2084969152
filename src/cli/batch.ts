import { InvalidArgumentError, type Command } from 'commander';
import { CaliperError } from '../errors.ts';
import {
  parseBatchFormat,
  parseParquetCompression,
  type BatchFormat,
  type ParquetCompression,
} from '../batch/io/batch-format.ts';
import type { BatchStatus } from '../batch/distributed/batch-queue.ts';
import type { BatchProgress, BatchSummary } from '../batch/batch-runner.ts';
import type { ErrorPolicy } from '../batch/chunk-scorer.ts';
import { parseIntegerOption } from './options.ts';

interface BatchOptions {
  model: string;
  registry?: string;
  input: string;
  output: string;
  format?: BatchFormat;
  inputFormat?: BatchFormat;
  batchSize: number;
  chunkRows?: number;
  keep?: string[];
  map?: Record<string, string>;
  onError: ErrorPolicy;
  errors?: string;
  instances?: number;
  threads?: number;
  queue?: string;
  attempts: number;
  detach?: boolean;
  overwrite?: boolean;
  rowPath?: boolean;
  partitionBy?: string;
  compression?: ParquetCompression;
  progress: boolean;
  json?: boolean;
}

/** Input rows per committed part (and per --queue shard) when --chunk-rows is not given. */
const DEFAULT_CHUNK_ROWS = 131_072;

const formatOption =
  (option: string) =>
  (value: string): BatchFormat => {
    try {
      return parseBatchFormat(value, option);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };

function parseKeep(value: string): string[] {
  return value
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c.length > 0);
}

function parseMap(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const out = { ...previous };
  for (const pair of value.split(',')) {
    const [field, column, ...rest] = pair.split('=');
    if (!field || !column || rest.length > 0)
      throw new InvalidArgumentError(`--map: expected FIELD=COLUMN[,FIELD=COLUMN...], got "${value}"`);
    out[field.trim()] = column.trim();
  }
  return out;
}

function printSummary(summary: BatchSummary, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const resumed =
    summary.rows - summary.rowsThisRun > 0
      ? ` (${(summary.rows - summary.rowsThisRun).toLocaleString('en-US')} committed by an earlier run)`
      : '';
  process.stdout.write(
    `${[
      `scored ${summary.rows.toLocaleString('en-US')} rows${resumed} → ${summary.output}`,
      `  written ${summary.outputRows.toLocaleString('en-US')} rows, ${summary.errors.toLocaleString('en-US')} errors${summary.errors > 0 ? ` (listed in ${summary.errorsFile})` : ''}`,
      `  ${summary.seconds.toFixed(1)} s, ${Math.round(summary.rowsPerSecond).toLocaleString('en-US')} rows/s${summary.peakRssBytes ? `, peak memory ${Math.round(summary.peakRssBytes / 2 ** 20)} MiB` : ''} · job ${summary.job}`,
    ].join('\n')}\n`,
  );
}

function printStatus(status: BatchStatus, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(status)}\n`);
    return;
  }
  const percent = status.totalRows > 0 ? ((100 * status.rows) / status.totalRows).toFixed(1) : '100.0';
  const lines = [
    `job ${status.job}: ${status.state}`,
    `  shards ${status.doneShards}/${status.shards} · rows ${status.rows.toLocaleString('en-US')}/${status.totalRows.toLocaleString('en-US')} (${percent}%) · ${status.errors} row errors`,
  ];
  if (status.output) lines.push(`  output ${status.output}`);
  for (const failed of status.failedShards)
    lines.push(`  failed shard ${failed.shard} after ${failed.attempts} attempts: ${failed.reason}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function registerBatchCommand(program: Command): void {
  const batch = program
    .command('batch')
    .description(
      "score Parquet, CSV or JSONL files through a model's pipeline: streaming, resumable, optionally sharded over workers",
    )
    .option(
      '-m, --model <dir|uri>',
      '(required) model folder (model.yaml + version folders) or registry URI (models:/NAME/Production, models:/NAME/3, models:/NAME@ALIAS)',
    )
    .option('--registry <dir>', 'registry home for models:/ URIs (default $CALIPER_HOME or ~/.caliper)')
    .option(
      '-i, --input <path>',
      '(required) input FILE, DIR (its .parquet/.csv/.jsonl files) or GLOB (e.g. data/*.parquet)',
    )
    .option(
      '-o, --output <path>',
      '(required) output FILE (.parquet/.csv/.jsonl; .csv.gz, .jsonl.zst… compressed) or DIR (one part file per chunk)',
    )
    .option(
      '-f, --format <format>',
      'output format: parquet, csv or jsonl (default: from --output, else the input format)',
      formatOption('--format'),
    )
    .option('--input-format <format>', 'input format when the extension does not say', formatOption('--input-format'))
    .option('-b, --batch-size <rows>', 'rows per inference batch', parseIntegerOption('--batch-size', 1), 8192)
    .option(
      '--chunk-rows <rows>',
      'input rows per committed part (and per shard with --queue): a killed job resumes after its last committed part ' +
        `(default ${DEFAULT_CHUNK_ROWS}; without this option, a clean input whose output is one file or --partition-by ` +
        'folders is scored and written in one DuckDB pass, and a killed job starts over)',
      parseIntegerOption('--chunk-rows', 1),
    )
    .option(
      '-k, --keep <columns>',
      'input columns to copy to the output, comma-separated (default: all; "" for none)',
      parseKeep,
    )
    .option('--map <field=column>', 'read a request field from a differently named column (repeatable)', parseMap)
    .option(
      '--on-error <policy>',
      'bad rows: skip (leave out), null (write with empty predictions) or fail (stop)',
      (v: string): ErrorPolicy => {
        if (v !== 'skip' && v !== 'null' && v !== 'fail')
          throw new InvalidArgumentError(`--on-error: expected skip, null or fail, got "${v}"`);
        return v;
      },
      'skip',
    )
    .option(
      '--errors <file>',
      'errors file (JSONL: file, row, reason); default OUTPUT.errors.jsonl or DIR/_errors.jsonl',
    )
    .option(
      '--instances <n>',
      'model instances on worker threads (default: model.yaml)',
      parseIntegerOption('--instances', 1),
    )
    .option('--threads <n>', 'ONNX Runtime intra-op threads per instance', parseIntegerOption('--threads', 1))
    .option('-q, --queue <url>', 'distribute shards over `caliper worker`s through this Redis (redis://HOST:PORT)')
    .option('--attempts <n>', 'tries per shard with --queue', parseIntegerOption('--attempts', 1), 3)
    .option('--detach', 'with --queue: queue the shards and return; follow with `caliper batch status JOB`')
    .option('--overwrite', "replace an existing output (or another job's parts) instead of refusing")
    .option('--partition-by <column>', 'write OUTPUT as a folder of COLUMN=VALUE/ partitions of an output column')
    .option(
      '--compression <codec>',
      'Parquet output compression: snappy (default), zstd, gzip, lz4, brotli or uncompressed',
      (v: string): ParquetCompression => {
        try {
          return parseParquetCompression(v);
        } catch (error) {
          throw new InvalidArgumentError((error as Error).message);
        }
      },
    )
    .option('--row-path', 'score row by row even where the columnar fast path applies (for comparison)')
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print the summary as JSON')
    .action(async (options: BatchOptions) => {
      // Checked here, not by commander: it checks a parent's required options for its subcommands too (`batch status`).
      const missing = (['model', 'input', 'output'] as const).filter((name) => options[name] === undefined);
      if (missing.length > 0)
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          `batch: required option ${missing.map((m) => `--${m}`).join(', ')} not specified (see caliper batch --help)`,
        );
      // A one-pass job of one large Parquet file is scored in halves, the second on a worker thread started first of
      // all, so that its start runs beside this one's (half-scorer.ts primeSecondHalf); the model is loaded into it
      // below, once resolved.
      // A local job without --chunk-rows or --row-path is scored in one pass where it can.
      const onePassLikely = !options.queue && !options.rowPath && options.chunkRows === undefined;
      const halfScorer = onePassLikely ? await import('../batch/columnar/half-scorer.ts') : undefined;
      halfScorer?.primeSecondHalf(options.input!);
      // The --queue submitter connects to the queue while it plans the job: the Redis client's and BullMQ's first
      // commands (20-25 ms of cold code) overlap the model's description and the input's probe.
      const queueUrl = options.queue;
      const opening = queueUrl
        ? import('../batch/distributed/batch-queue.ts').then(({ BatchQueue }) => new BatchQueue(queueUrl))
        : undefined;
      opening?.catch(() => undefined);
      let queueHandedOver = false;
      try {
        // The scoring modules (ONNX Runtime, DuckDB, BullMQ) load here, so that other commands and --help skip them.
        // ONNX Runtime and the scoring runner only for a local job; BullMQ and its Redis client only for --queue; the
        // progress bar only where it is drawn.
        const [{ planBatchJob }, runner, engine] = await Promise.all([
          import('../batch/batch-plan.ts'),
          options.queue ? undefined : import('../batch/batch-runner.ts'),
          options.queue ? undefined : import('../batch/io/duckdb-engine.ts'),
        ]);
        // A job without --chunk-rows is scored in one pass where it can, on one DuckDB thread per COPY: DuckDB opens on
        // one thread, and takes its configured count only if the job leaves the one pass (scoring-copy.ts).
        if (engine && onePassLikely) engine.openDuckdbOnOneThread();
        const modelOptions = {
          ...(options.instances !== undefined ? { instances: options.instances } : {}),
          ...(options.threads !== undefined ? { threads: options.threads } : {}),
          ...(options.registry !== undefined ? { registry: options.registry } : {}),
        };
        // The --queue submitter scores nothing: it plans from model.yaml and the ONNX file's declared inputs and outputs,
        // without loading ONNX Runtime (the workers load the model).
        const loading = runner
          ? import('../batch/batch-model.ts').then((m) => m.loadBatchModel(options.model!, modelOptions))
          : undefined;
        loading?.then(
          (v) => halfScorer?.loadPrimedHalfScorer(v.pool.sessionSpec),
          () => undefined,
        );
        const loaded = await loading;
        const version =
          loaded ??
          (await (await import('../batch/batch-model-description.ts')).describeBatchModel(options.model, modelOptions));
        try {
          const spec = await planBatchJob(version, {
            model: options.model,
            input: options.input,
            output: options.output,
            batchSize: options.batchSize,
            partRows: options.chunkRows ?? DEFAULT_CHUNK_ROWS,
            onError: options.onError,
            mode: options.queue ? 'distributed' : 'local',
            ...(options.format ? { format: options.format } : {}),
            ...(options.inputFormat ? { inputFormat: options.inputFormat } : {}),
            ...(options.keep ? { keep: options.keep } : {}),
            ...(options.map ? { map: options.map } : {}),
            ...(options.errors ? { errorsFile: options.errors } : {}),
            ...(options.instances !== undefined ? { instances: options.instances } : {}),
            ...(options.threads !== undefined ? { threads: options.threads } : {}),
            ...(options.registry !== undefined ? { registry: options.registry } : {}),
            ...(options.partitionBy !== undefined ? { partitionBy: options.partitionBy } : {}),
            ...(options.compression !== undefined ? { compression: options.compression } : {}),
          });
          const progress: BatchProgress =
            options.progress && process.stderr.isTTY && !options.json
              ? new (await import('../batch/progress-bar.ts')).ProgressBar()
              : { start() {}, advance() {}, stop() {} };
          if (runner && loaded) {
            const { committedSoFar, runLocalBatch, stopPartWrites } = runner;
            // Ctrl-C: committed parts stay; say where the job stopped and how to pick it up.
            // A part being written is finished first (exiting while its COPY runs would hang: see stopPartWrites).
            const interrupted = (): void => {
              progress.stop();
              void stopPartWrites().then(async () => {
                const done = committedSoFar(spec);
                process.stderr.write(
                  options.chunkRows === undefined && done.parts === 0
                    ? // The one pass (scoring-copy.ts) commits nothing until its COPY ends: there is nothing to resume after.
                      `\ncaliper batch: interrupted before anything was committed (job ${spec.id}); running the same command again starts it over.\n` +
                        `  Without --chunk-rows a job is scored in one pass where it can, committing only at its end; add --chunk-rows N to make it resumable in parts of N rows.\n`
                    : `\ncaliper batch: interrupted; ${done.rows.toLocaleString('en-US')} rows (${done.parts} parts) are committed in ${done.where} (job ${spec.id}).\n` +
                        `  Run the same command again to resume after them, or add --overwrite to start over.\n`,
                );
                await halfScorer?.closeHalfScorers();
                process.exit(130);
              });
            };
            process.once('SIGINT', interrupted);
            try {
              printSummary(
                await runLocalBatch(loaded, spec, progress, {
                  overwrite: options.overwrite ?? false,
                  rowPath: options.rowPath ?? false,
                  onePass: options.chunkRows === undefined,
                }),
                options.json,
              );
            } finally {
              process.removeListener('SIGINT', interrupted);
            }
            return;
          }
          const distributed = await import('../batch/distributed/distributed-batch.ts');
          queueHandedOver = true;
          const result = await distributed.runDistributedBatch(spec, progress, {
            queue: options.queue!,
            ...(opening ? { opened: opening } : {}),
            attempts: options.attempts,
            detach: options.detach ?? false,
            overwrite: options.overwrite ?? false,
          });
          if ('state' in result) printStatus(result, options.json);
          else printSummary(result, options.json);
        } finally {
          if (loaded && loaded.state !== 'unloading') await loaded.unload();
        }
      } finally {
        // Before the process exits: a thread ended while its DuckDB opens aborts the process.
        await halfScorer?.closeHalfScorers();
        // The job failed before it was submitted: the queue opened for it is closed unused (an open connection keeps
        // the process up).
        if (!queueHandedOver) await (await opening?.catch(() => undefined))?.close();
      }
    });

  batch
    .command('status')
    .description('progress of a batch job submitted with --queue')
    .argument('<job>', 'the job id printed by `caliper batch`')
    .option('-q, --queue <url>', 'the Redis the job was submitted to (required)')
    .option('--json', 'print the status as JSON')
    .action(async (job: string, options: { queue?: string; json?: boolean }) => {
      // Commander hands `--queue` and `--json` after `status JOB` to the parent `batch` command, which has its own.
      const parent = batch.opts() as { queue?: string; json?: boolean };
      const url = options.queue ?? parent.queue;
      const json = options.json ?? parent.json;
      if (!url)
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          'batch status: --queue redis://HOST:PORT is required (the Redis the job was submitted to)',
        );
      const { BatchQueue } = await import('../batch/distributed/batch-queue.ts');
      const queue = new BatchQueue(url);
      try {
        printStatus(await queue.status(job), json);
      } finally {
        await queue.close();
      }
    });
}
