import { InvalidArgumentError, type Command } from 'commander';
import { parseBatchFormat, type BatchFormat } from '../batch/io/batch-format.ts';
import { loadBatchModel } from '../batch/batch-model.ts';
import { planBatchJob } from '../batch/batch-plan.ts';
import { BatchQueue, type BatchStatus } from '../batch/distributed/batch-queue.ts';
import { runLocalBatch, silentProgress, type BatchSummary } from '../batch/batch-runner.ts';
import type { ErrorPolicy } from '../batch/chunk-scorer.ts';
import { runDistributedBatch } from '../batch/distributed/distributed-batch.ts';
import { ProgressBar } from '../batch/progress-bar.ts';
import { parseIntegerOption } from './options.ts';

interface BatchOptions {
  model: string;
  registry?: string;
  input: string;
  output: string;
  format?: BatchFormat;
  inputFormat?: BatchFormat;
  batchSize: number;
  chunkRows: number;
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
  progress: boolean;
  json?: boolean;
}

const formatOption = (option: string) => (value: string): BatchFormat => {
  try {
    return parseBatchFormat(value, option);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};

function parseKeep(value: string): string[] {
  return value.split(',').map((c) => c.trim()).filter((c) => c.length > 0);
}

function parseMap(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const out = { ...previous };
  for (const pair of value.split(',')) {
    const [field, column, ...rest] = pair.split('=');
    if (!field || !column || rest.length > 0) throw new InvalidArgumentError(`--map: expected FIELD=COLUMN[,FIELD=COLUMN...], got "${value}"`);
    out[field.trim()] = column.trim();
  }
  return out;
}

function printSummary(summary: BatchSummary, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const resumed = summary.rows - summary.rowsThisRun > 0 ? ` (${(summary.rows - summary.rowsThisRun).toLocaleString('en-US')} committed by an earlier run)` : '';
  process.stdout.write([
    `scored ${summary.rows.toLocaleString('en-US')} rows${resumed} → ${summary.output}`,
    `  written ${summary.outputRows.toLocaleString('en-US')} rows, ${summary.errors.toLocaleString('en-US')} errors${summary.errors > 0 ? ` (listed in ${summary.errorsFile})` : ''}`,
    `  ${summary.seconds.toFixed(1)} s, ${Math.round(summary.rowsPerSecond).toLocaleString('en-US')} rows/s${summary.peakRssBytes ? `, peak memory ${Math.round(summary.peakRssBytes / 2 ** 20)} MiB` : ''} · job ${summary.job}`,
  ].join('\n') + '\n');
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
  for (const failed of status.failedShards) lines.push(`  failed shard ${failed.shard} after ${failed.attempts} attempts: ${failed.reason}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function registerBatchCommand(program: Command): void {
  const batch = program
    .command('batch')
    .description('score Parquet, CSV or JSONL files through a model\'s pipeline: streaming, resumable, optionally sharded over workers')
    .requiredOption('-m, --model <dir|uri>', 'model folder (model.yaml + version folders) or registry URI (models:/NAME/Production, models:/NAME/3, models:/NAME@ALIAS)')
    .option('--registry <dir>', 'registry home for models:/ URIs (default $CALIPER_HOME or ~/.caliper)')
    .requiredOption('-i, --input <path>', 'input FILE, DIR (its .parquet/.csv/.jsonl files) or GLOB (e.g. data/*.parquet)')
    .requiredOption('-o, --output <path>', 'output FILE (.parquet/.csv/.jsonl) or DIR (one part file per chunk)')
    .option('-f, --format <format>', 'output format: parquet, csv or jsonl (default: from --output, else the input format)', formatOption('--format'))
    .option('--input-format <format>', 'input format when the extension does not say', formatOption('--input-format'))
    .option('-b, --batch-size <rows>', 'rows per inference batch', parseIntegerOption('--batch-size', 1), 8192)
    .option('--chunk-rows <rows>', 'input rows per committed part (and per shard with --queue)', parseIntegerOption('--chunk-rows', 1), 131_072)
    .option('-k, --keep <columns>', 'input columns to copy to the output, comma-separated (default: all; "" for none)', parseKeep)
    .option('--map <field=column>', 'read a request field from a differently named column (repeatable)', parseMap)
    .option('--on-error <policy>', 'bad rows: skip (leave out), null (write with empty predictions) or fail (stop)', (v: string): ErrorPolicy => {
      if (v !== 'skip' && v !== 'null' && v !== 'fail') throw new InvalidArgumentError(`--on-error: expected skip, null or fail, got "${v}"`);
      return v;
    }, 'skip')
    .option('--errors <file>', 'errors file (JSONL: file, row, reason); default OUTPUT.errors.jsonl or DIR/_errors.jsonl')
    .option('--instances <n>', 'model instances on worker threads (default: model.yaml)', parseIntegerOption('--instances', 1))
    .option('--threads <n>', 'ONNX Runtime intra-op threads per instance', parseIntegerOption('--threads', 1))
    .option('-q, --queue <url>', 'distribute shards over `caliper worker`s through this Redis (redis://HOST:PORT)')
    .option('--attempts <n>', 'tries per shard with --queue', parseIntegerOption('--attempts', 1), 3)
    .option('--detach', 'with --queue: queue the shards and return; follow with `caliper batch status JOB`')
    .option('--overwrite', 'replace an existing output (or another job\'s parts) instead of refusing')
    .option('--row-path', 'score row by row even where the columnar fast path applies (for comparison)')
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print the summary as JSON')
    .action(async (options: BatchOptions) => {
      const version = await loadBatchModel(options.model, {
        ...(options.instances !== undefined ? { instances: options.instances } : {}),
        ...(options.threads !== undefined ? { threads: options.threads } : {}),
        ...(options.registry !== undefined ? { registry: options.registry } : {}),
      });
      try {
        const spec = await planBatchJob(version, {
          model: options.model, input: options.input, output: options.output, batchSize: options.batchSize, partRows: options.chunkRows,
          onError: options.onError, mode: options.queue ? 'distributed' : 'local',
          ...(options.format ? { format: options.format } : {}),
          ...(options.inputFormat ? { inputFormat: options.inputFormat } : {}),
          ...(options.keep ? { keep: options.keep } : {}),
          ...(options.map ? { map: options.map } : {}),
          ...(options.errors ? { errorsFile: options.errors } : {}),
          ...(options.instances !== undefined ? { instances: options.instances } : {}),
          ...(options.threads !== undefined ? { threads: options.threads } : {}),
          ...(options.registry !== undefined ? { registry: options.registry } : {}),
        });
        const progress = options.progress && process.stderr.isTTY && !options.json ? new ProgressBar() : silentProgress;
        if (!options.queue) {
          printSummary(await runLocalBatch(version, spec, progress, { overwrite: options.overwrite ?? false, rowPath: options.rowPath ?? false }), options.json);
          return;
        }
        await version.unload();
        const result = await runDistributedBatch(spec, progress, { queue: options.queue, attempts: options.attempts, detach: options.detach ?? false, overwrite: options.overwrite ?? false });
        if ('state' in result) printStatus(result, options.json);
        else printSummary(result, options.json);
      } finally {
        if (version.state !== 'unloading') await version.unload();
      }
    });

  batch
    .command('status')
    .description('progress of a batch job submitted with --queue')
    .argument('<job>', 'the job id printed by `caliper batch`')
    .requiredOption('-q, --queue <url>', 'the Redis the job was submitted to')
    .option('--json', 'print the status as JSON')
    .action(async (job: string, options: { queue: string; json?: boolean }) => {
      const queue = new BatchQueue(options.queue);
      try {
        printStatus(await queue.status(job), options.json);
      } finally {
        await queue.close();
      }
    });
}
