import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { SEARCH_STRATEGIES, type SearchStrategy } from '../bench/config-search.ts';
import { renderTuneHtml } from '../bench/html-report.ts';
import { writeSettings } from '../bench/model-settings.ts';
import { readRequestsFile } from '../bench/request-data.ts';
import { DEFAULT_TUNE_CONCURRENCY, tune, type TuneTrial } from '../bench/tuner.ts';
import { describeSettings, type TuneSettings } from '../bench/tune-space.ts';
import { isModelFolder } from '../config/model-config-file.ts';
import { CaliperError } from '../errors.ts';
import { parseChoiceOption, parseIntegerListOption, parseIntegerOption, parsePositiveNumberOption } from './options.ts';

interface TuneCommandOptions {
  model: string;
  p99Ms: number;
  search: SearchStrategy;
  write?: boolean;
  concurrency: number[];
  duration: number;
  maxTrials: number;
  data?: string;
  json?: boolean;
  output?: string;
  report?: string;
}

function formatTrial(trial: TuneTrial, index: number, budget: number, progress: string): string {
  const outcome = trial.error
    ? `failed: ${trial.error}`
    : trial.best
      ? `${trial.best.throughput.toFixed(1)} req/s at concurrency ${trial.best.concurrency} (p99 ${trial.best.p99Ms.toFixed(2)} ms)`
      : `p99 over ${budget} ms at every concurrency`;
  return `#${String(index).padEnd(3)} ${trial.description.padEnd(58)} ${outcome}  ${progress}`;
}

const sameSettings = (a: TuneSettings, b: TuneSettings): boolean =>
  a.maxBatchSize === b.maxBatchSize &&
  a.maxQueueDelayUs === b.maxQueueDelayUs &&
  a.instanceCount === b.instanceCount &&
  a.instanceKind === b.instanceKind &&
  a.intraOpThreads === b.intraOpThreads;

const formatDuration = (seconds: number): string =>
  seconds < 90 ? `${Math.round(seconds)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;

export function registerTuneCommand(program: Command): void {
  program
    .command('tune')
    .description('search batching and instance settings for the highest throughput within a p99 latency budget')
    .requiredOption('--model <dir>', 'model folder (model.yaml and version folders)')
    .requiredOption('--p99-ms <ms>', 'p99 latency budget in milliseconds', parsePositiveNumberOption('--p99-ms'))
    .option(
      '--search <strategy>',
      'quick (hill climbing from the current settings) | grid (every candidate)',
      parseChoiceOption('--search', SEARCH_STRATEGIES),
      'quick',
    )
    .option('--write', 'store the winning settings in model.yaml (the rest of the file is kept as written)')
    .option(
      '--concurrency <list>',
      'closed-loop levels measured per candidate',
      parseIntegerListOption('--concurrency'),
      DEFAULT_TUNE_CONCURRENCY,
    )
    .option('--duration <seconds>', 'measurement window length', parsePositiveNumberOption('--duration'), 1)
    .option(
      '--max-trials <n>',
      'windows per level at most (stability: ±10% over 3 windows)',
      parseIntegerOption('--max-trials', 3),
      6,
    )
    .option('--data <file>', "requests to send (JSONL); default: the model folder's sample-request.json")
    .option('--json', 'print the report as JSON on stdout')
    .option('-o, --output <file.json>', 'write the JSON report to a file')
    .option('--report <file.html>', 'write a self-contained HTML report with charts')
    .action(async (options: TuneCommandOptions) => {
      if (!isModelFolder(options.model))
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          `--model: ${options.model} is not a model folder (no model.yaml)`,
        );
      const log = (line: string): void => {
        process.stderr.write(`${line}\n`);
      };
      log(`caliper tune: ${options.model}, p99 budget ${options.p99Ms} ms, ${options.search} search`);
      const started = performance.now();
      let plan: { spaceSize: number; search: SearchStrategy } = { spaceSize: 0, search: options.search };
      const report = await tune({
        modelDir: options.model,
        p99BudgetMs: options.p99Ms,
        search: options.search,
        concurrency: options.concurrency,
        windowMs: options.duration * 1000,
        maxTrials: options.maxTrials,
        ...(options.data ? { data: readRequestsFile(options.data) } : {}),
        onPlan: ({ spaceSize, search }) => {
          plan = { spaceSize, search };
          log(
            search === 'grid'
              ? `${spaceSize} candidates to measure (the current settings first)`
              : `quick search: the current settings first, then neighbours while throughput improves (at most ${spaceSize} candidates; --search grid measures all)`,
          );
        },
        onTrial: (trial, index) => {
          const elapsed = (performance.now() - started) / 1000;
          const perTrial = elapsed / index;
          const progress =
            plan.search === 'grid'
              ? `[${index}/${plan.spaceSize}, ${formatDuration(elapsed)} elapsed, ETA ${formatDuration(perTrial * (plan.spaceSize - index))}]`
              : `[${formatDuration(elapsed)} elapsed, ${formatDuration(perTrial)} per candidate]`;
          log(formatTrial(trial, index, options.p99Ms, progress));
        },
      });
      const json = JSON.stringify(report, null, 2);
      if (options.output) writeFileSync(options.output, `${json}\n`);
      if (options.report) {
        writeFileSync(options.report, renderTuneHtml(report));
        log(`report: ${resolve(options.report)}`);
      }
      if (options.json) process.stdout.write(`${json}\n`);
      if (!report.winner)
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          `no candidate met p99 <= ${options.p99Ms} ms (${report.trials.length} measured); try a larger budget or lower --concurrency`,
        );
      const current = report.trials.find((t) => sameSettings(t.settings, report.current));
      log(
        `current settings (model.yaml): ${describeSettings(report.current)}: ${current?.best ? `${current.best.throughput} req/s` : 'p99 over the budget'}`,
      );
      log(
        `winner: ${report.winner.description}: ${report.winner.best!.throughput} req/s within p99 ${options.p99Ms} ms${report.speedupOverCurrent !== null ? ` (${report.speedupOverCurrent}× the current settings)` : ''}; ${report.trials.length} of ${report.spaceSize} candidates measured in ${formatDuration(report.elapsedS)}`,
      );
      log(`chosen as ${report.winnerRule}`);
      if (options.write) {
        if (sameSettings(report.winner.settings, report.current))
          log('--write: the current settings won; model.yaml left unchanged');
        else log(`wrote ${writeSettings(options.model, report.winner.settings, report.current).join(', ')}`);
      }
    });
}
