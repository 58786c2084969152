import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseIntegerOption } from './options.ts';

interface LoadOptions {
  store: string;
  key: string;
  fields?: string;
  ttl?: number;
  batchSize: number;
  json?: boolean;
  progress: boolean;
  merge?: boolean;
}

export function registerFeaturesCommand(program: Command): void {
  const features = program
    .command('features')
    .description('online feature store: materialize per-entity features for the features stage');
  features
    .command('load')
    .description('write a CSV or Parquet file into Redis, one hash per entity key, in pipelined batches')
    .argument('<file>', 'feature file (.csv with a header row, or .parquet)')
    .requiredOption('--store <url>', 'Redis URL, e.g. redis://127.0.0.1:6379')
    .requiredOption('--key <template>', "entity key template naming file columns, e.g. 'user:{user_id}'")
    .option('--fields <list>', 'comma-separated columns to store (default: every non-key column)')
    .option('--ttl <seconds>', 'expire each entity after this many seconds', parseIntegerOption('--ttl', 1))
    .option('--batch-size <rows>', 'rows per Redis round trip', parseIntegerOption('--batch-size', 1), 1000)
    .option(
      '--merge',
      "write the file's non-empty cells over each entity's stored fields (default: replace each entity's hash as a whole)",
    )
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print the summary as JSON')
    .action(async (file: string, options: LoadOptions) => {
      // ioredis, DuckDB and the progress bar load when the command runs, not for --help or other commands.
      const [{ loadFeatureFile }, { default: cliProgress }] = await Promise.all([
        import('../features/feature-loader.ts'),
        import('cli-progress'),
      ]);
      const showBar = options.progress && !options.json && process.stderr.isTTY;
      const bar = showBar
        ? new cliProgress.SingleBar(
            { format: 'loading {bar} {percentage}% | {value}/{total} rows | {eta_formatted} left', hideCursor: true },
            cliProgress.Presets.shades_classic,
          )
        : undefined;
      let started = false;
      try {
        const summary = await loadFeatureFile({
          file: resolve(file),
          store: options.store,
          key: options.key,
          fields: options.fields
            ?.split(',')
            .map((f) => f.trim())
            .filter(Boolean),
          ttlS: options.ttl,
          batchSize: options.batchSize,
          merge: options.merge === true,
          onProgress: (done, total) => {
            if (!bar) return;
            if (!started) {
              bar.start(total, 0);
              started = true;
            }
            bar.update(done);
          },
        });
        bar?.stop();
        if (options.json) {
          process.stdout.write(`${JSON.stringify(summary)}\n`);
          return;
        }
        process.stdout.write(
          `loaded ${summary.keysWritten} entities (${summary.rows} rows, ${summary.skippedRows} skipped${summary.keysCleared ? `, ${summary.keysCleared} cleared` : ''}; ${summary.mode === 'merge' ? 'merged into' : 'replacing'} stored hashes) from ${file} into ${summary.store}\n` +
            `  key ${summary.key}, fields ${summary.fields.join(', ')}${summary.ttlS ? `, ttl ${summary.ttlS} s` : ''}\n` +
            `  ${summary.batches} batches in ${summary.seconds} s (${summary.rowsPerSecond} rows/s)\n`,
        );
      } finally {
        bar?.stop();
      }
    });
}
