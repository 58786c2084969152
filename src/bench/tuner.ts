import { CaliperError } from '../errors.ts';
import type { StepResult } from './bench-report.ts';
import { runBench } from './bench-runner.ts';
import { gridSearch, hillClimb, type SearchStrategy } from './config-search.ts';
import { HttpLoadTarget, inferencePath } from './load-target.ts';
import { round } from './measurement-window.ts';
import { CandidateFolder } from './model-settings.ts';
import { startModelServer, type ModelServerProcess } from './model-server-process.ts';
import { readSampleRequests, servedModelConfig, type RequestData } from './request-data.ts';
import {
  checkSearchSpace,
  defaultSearchSpace,
  describeSettings,
  gridPoints,
  pointKey,
  pointOfConfig,
  settingsAt,
  spaceWithCurrent,
  type SearchSpace,
  type SpacePoint,
  type TuneSettings,
} from './tune-space.ts';

export interface TuneOptions {
  modelDir: string;
  p99BudgetMs: number;
  search: SearchStrategy;
  space?: SearchSpace;
  /** Closed-loop concurrency levels measured per candidate; the sweep stops once p99 passes the budget. */
  concurrency?: number[];
  windowMs?: number;
  maxTrials?: number;
  data?: RequestData;
  /** Starts a server for a candidate folder; defaults to a `caliper serve` child process. */
  startServer?: (modelDir: string) => Promise<ModelServerProcess>;
  /** Called once before the first measurement: how many candidates the search may measure. */
  onPlan?: (plan: { spaceSize: number; maxTrials: number; search: SearchStrategy }) => void;
  onTrial?: (trial: TuneTrial, index: number) => void;
}

/** One candidate measured: its best operating point within the budget, if any. */
export interface TuneTrial {
  settings: TuneSettings;
  description: string;
  /** The highest-throughput concurrency level whose p99 met the budget without errors; null when none did. */
  best: { concurrency: number; throughput: number; p99Ms: number; p50Ms: number } | null;
  steps: {
    concurrency: number;
    throughput: number;
    p50Ms: number;
    p99Ms: number;
    errors: number;
    stable: boolean;
    meanBatchSize: number | null;
  }[];
  error?: string;
}

export interface TuneReport {
  kind: 'caliper-tune';
  version: 1;
  model: string;
  modelDir: string;
  p99BudgetMs: number;
  search: SearchStrategy;
  /** Candidates in the whole space (what a grid search measures). */
  spaceSize: number;
  concurrency: number[];
  windowMs: number;
  startedAt: string;
  /** The model's settings as found in model.yaml, measured first by the quick search. */
  current: TuneSettings;
  trials: TuneTrial[];
  winner: TuneTrial | null;
  /** Winner throughput over the current settings' throughput, when both met the budget. */
  speedupOverCurrent: number | null;
  /** How the winner was chosen among the measured candidates. */
  winnerRule: string;
  /** Seconds the search took. */
  elapsedS: number;
}

/** Throughputs closer than this fraction are within this machine's measurement noise. */
export const THROUGHPUT_TIE = 0.02;
export const WINNER_RULE = `the highest throughput within the p99 budget among every measured candidate; candidates within ${THROUGHPUT_TIE * 100}% of it (measurement noise) are ranked by lower p99, then the current settings first`;

/** The winner by WINNER_RULE, or null when no candidate met the budget. */
export function chooseWinner(trials: readonly TuneTrial[], current: TuneTrial | undefined): TuneTrial | null {
  const within = trials.filter((t) => t.best !== null);
  if (within.length === 0) return null;
  const top = Math.max(...within.map((t) => t.best!.throughput));
  const tied = within.filter((t) => t.best!.throughput >= top * (1 - THROUGHPUT_TIE));
  tied.sort((a, b) => a.best!.p99Ms - b.best!.p99Ms || (a === current ? -1 : b === current ? 1 : 0));
  return tied[0]!;
}

export const DEFAULT_TUNE_CONCURRENCY = [1, 2, 4, 8, 16, 32, 64];

const meetsBudget = (step: StepResult, budget: number): boolean =>
  step.errors.total === 0 && step.throughput > 0 && step.latencyMs.p99 <= budget;

/** Searches batching and instance settings for the highest throughput whose p99 stays within the budget. */
export async function tune(options: TuneOptions): Promise<TuneReport> {
  if (!(options.p99BudgetMs > 0))
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--p99-ms: expected a positive number of milliseconds, got ${options.p99BudgetMs}`,
    );
  const config = servedModelConfig(options.modelDir);
  const space = checkSearchSpace(spaceWithCurrent(options.space ?? defaultSearchSpace(), config));
  const data = options.data ?? readSampleRequests(options.modelDir);
  const concurrency = options.concurrency ?? DEFAULT_TUNE_CONCURRENCY;
  const windowMs = options.windowMs ?? 1000;
  const startServer = options.startServer ?? ((dir: string) => startModelServer(dir));
  const trials: TuneTrial[] = [];
  const measured = new Map<string, TuneTrial>();

  const measure = async (point: SpacePoint): Promise<TuneTrial> => {
    const settings = settingsAt(space, point);
    const trial: TuneTrial = { settings, description: describeSettings(settings), best: null, steps: [] };
    const folder = new CandidateFolder(options.modelDir, settings);
    let server: ModelServerProcess | undefined;
    try {
      server = await startServer(folder.dir);
      const target = new HttpLoadTarget(server.url, inferencePath('predict', config.name), data);
      const report = await runBench({
        target,
        url: server.url,
        model: config.name,
        protocol: 'predict',
        data: { source: data.source, requests: data.documents.length },
        plan: { mode: 'concurrency', levels: concurrency },
        windowMs,
        warmupMs: Math.min(windowMs, 500),
        stability: { maxTrials: options.maxTrials ?? 6 },
        // Past the budget, higher concurrency only adds queueing.
        stopAfter: (step) => !meetsBudget(step, options.p99BudgetMs),
      });
      for (const step of report.steps) {
        trial.steps.push({
          concurrency: step.load,
          throughput: step.throughput,
          p50Ms: step.latencyMs.p50,
          p99Ms: step.latencyMs.p99,
          errors: step.errors.total,
          stable: step.stable,
          meanBatchSize: step.serverStats ? step.serverStats.meanBatchSize : null,
        });
        if (meetsBudget(step, options.p99BudgetMs) && (!trial.best || step.throughput > trial.best.throughput)) {
          trial.best = {
            concurrency: step.load,
            throughput: step.throughput,
            p99Ms: step.latencyMs.p99,
            p50Ms: step.latencyMs.p50,
          };
        }
      }
    } catch (error) {
      trial.error = (error as Error).message;
    } finally {
      await server?.stop();
      folder.remove();
    }
    trials.push(trial);
    options.onTrial?.(trial, trials.length);
    return trial;
  };
  const evaluate = async (point: SpacePoint): Promise<number> => {
    const trial = await measure(point);
    measured.set(pointKey(point), trial);
    return trial.best?.throughput ?? 0;
  };

  const start = pointOfConfig(space, config);
  const startedAt = new Date().toISOString();
  const started = performance.now();
  const spaceSize = gridPoints(space).length;
  options.onPlan?.({ spaceSize, maxTrials: spaceSize, search: options.search });
  // The current settings are measured first whatever the strategy: they are the baseline of the comparison.
  await evaluate(start);
  if (options.search === 'grid')
    await gridSearch(space, (point) =>
      measured.has(pointKey(point))
        ? Promise.resolve(measured.get(pointKey(point))!.best?.throughput ?? 0)
        : evaluate(point),
    );
  else
    await hillClimb(space, start, (point) =>
      measured.has(pointKey(point))
        ? Promise.resolve(measured.get(pointKey(point))!.best?.throughput ?? 0)
        : evaluate(point),
    );
  const current = measured.get(pointKey(start));
  const winner = chooseWinner(trials, current);
  const speedup = winner?.best && current?.best ? round(winner.best.throughput / current.best.throughput, 3) : null;
  return {
    kind: 'caliper-tune',
    version: 1,
    model: config.name,
    modelDir: config.dir,
    p99BudgetMs: options.p99BudgetMs,
    search: options.search,
    spaceSize,
    concurrency,
    windowMs,
    startedAt,
    current: settingsAt(space, start),
    trials,
    winner,
    speedupOverCurrent: speedup,
    winnerRule: WINNER_RULE,
    elapsedS: round((performance.now() - started) / 1000, 1),
  };
}
