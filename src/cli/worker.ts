import type { Command } from 'commander';
import { parseIntegerOption } from './options.ts';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('take batch-scoring shards from a Redis queue (run one per core, on as many machines as you like)')
    .requiredOption('-q, --queue <url>', 'the Redis the batch jobs are queued on (redis://HOST:PORT)')
    .option(
      '-c, --concurrency <n>',
      'shards processed at once by this process',
      parseIntegerOption('--concurrency', 1),
      1,
    )
    .option(
      '--instances <n>',
      "model instances on worker threads (default: the job's or model.yaml's)",
      parseIntegerOption('--instances', 1),
    )
    .option('--threads <n>', 'ONNX Runtime intra-op threads per instance', parseIntegerOption('--threads', 1))
    .option(
      '--duckdb-threads <n>',
      'DuckDB threads for reading and writing Parquet (1: one worker per core scales by process)',
      parseIntegerOption('--duckdb-threads', 1),
      1,
    )
    .option(
      '--registry <dir>',
      "registry home for jobs whose model is a models:/ URI (default: the job's, else $CALIPER_HOME or ~/.caliper)",
    )
    .option(
      '--lock-ms <ms>',
      'shard lock time: a shard of a killed worker is retried after about this long',
      parseIntegerOption('--lock-ms', 1000),
      30_000,
    )
    .option(
      '--cpu <list>',
      "pin the worker to these CPUs (Linux, taskset's list: 0, 0,2, 1-3): with one worker per core, each on its own, " +
        "a worker's DuckDB and JavaScript threads, which take turns on each shard, stay off the other workers' cores",
    )
    .option('--json', 'log one JSON line per shard')
    .action(
      async (options: {
        queue: string;
        concurrency: number;
        instances?: number;
        threads?: number;
        duckdbThreads: number;
        lockMs: number;
        registry?: string;
        cpu?: string;
        json?: boolean;
      }) => {
        // Before the worker's threads start (DuckDB's, ONNX Runtime's): they inherit the mask from this thread.
        if (options.cpu !== undefined) (await import('../system/cpu-affinity.ts')).pinToCpus(options.cpu);
        // BullMQ, DuckDB and ONNX Runtime load when the worker starts, not for --help or other commands.
        const [{ BatchWorker }, { setDuckdbThreads }] = await Promise.all([
          import('../batch/distributed/batch-worker.ts'),
          import('../batch/io/duckdb-engine.ts'),
        ]);
        setDuckdbThreads(options.duckdbThreads);
        const worker = new BatchWorker({
          queue: options.queue,
          concurrency: options.concurrency,
          lockMs: options.lockMs,
          ...(options.instances !== undefined ? { instances: options.instances } : {}),
          ...(options.threads !== undefined ? { threads: options.threads } : {}),
          ...(options.registry !== undefined ? { registry: options.registry } : {}),
          onShard: (event) => {
            const shard = `${event.shard.fileIndex}:${event.shard.start}`;
            if (options.json)
              process.stdout.write(
                `${JSON.stringify({ job: event.job, shard, rows: event.meta?.inputRows, errors: event.meta?.errors.length, scorer: event.scorer, path: event.path, error: event.error })}\n`,
              );
            else if (event.error) process.stderr.write(`job ${event.job} shard ${shard} failed: ${event.error}\n`);
            else
              process.stderr.write(
                `job ${event.job} shard ${shard}: ${event.meta!.inputRows} rows, ${event.meta!.errors.length} errors (${event.path})\n`,
              );
          },
        });
        await worker.ready();
        process.stderr.write(`caliper worker: waiting for shards on ${options.queue}\n`);
        const shutdown = (): void => {
          worker.close().then(
            () => process.exit(0),
            () => process.exit(1),
          );
        };
        process.once('SIGTERM', shutdown);
        process.once('SIGINT', shutdown);
      },
    );
}
