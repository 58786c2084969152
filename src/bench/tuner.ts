import { CaliperError } from '../errors.ts';
import type { StepResult } from './bench-report.ts';
import { runBench } from './bench-runner.ts';
import { gridSearch, hillClimb, type SearchStrategy } from './config-search.ts';
import { HttpLoadTarget, inferencePath } from './load-target.ts';
import { round } from './measurement-window.ts';
import { CandidateFolder } from './model-settings.ts';
import { startModelServer, type ModelServerProcess } from './model-server-process.ts';
import { readSampleRequests, servedModelConfig, type RequestData } from './request-data.ts';
import { checkSearchSpace, defaultSearchSpace, describeSettings, gridPoints, pointOfConfig, settingsAt, type SearchSpace, type SpacePoint, type TuneSettings } from './tune-space.ts';

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
  onTrial?: (trial: TuneTrial, index: number) => void;
}

/** One candidate measured: its best operating point within the budget, if any. */
export interface TuneTrial {
  settings: TuneSettings;
  description: string;
  /** The highest-throughput concurrency level whose p99 met the budget without errors; null when none did. */
  best: { concurrency: number; throughput: number; p99Ms: number; p50Ms: number } | null;
  steps: { concurrency: number; throughput: number; p50Ms: number; p99Ms: number; errors: number; stable: boolean; meanBatchSize: number | null }[];
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
}

export const DEFAULT_TUNE_CONCURRENCY = [1, 2, 4, 8, 16, 32, 64];

const meetsBudget = (step: StepResult, budget: number): boolean => step.errors.total === 0 && step.throughput > 0 && step.latencyMs.p99 <= budget;

/** Searches batching and instance settings for the highest throughput whose p99 stays within the budget. */
export async function tune(options: TuneOptions): Promise<TuneReport> {
  if (!(options.p99BudgetMs > 0)) throw new CaliperError('CALIPER_INVALID_INPUT', `--p99-ms: expected a positive number of milliseconds, got ${options.p99BudgetMs}`);
  const config = servedModelConfig(options.modelDir);
  const space = checkSearchSpace(options.space ?? defaultSearchSpace());
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
          concurrency: step.load, throughput: step.throughput, p50Ms: step.latencyMs.p50, p99Ms: step.latencyMs.p99,
          errors: step.errors.total, stable: step.stable, meanBatchSize: step.serverStats ? step.serverStats.meanBatchSize : null,
        });
        if (meetsBudget(step, options.p99BudgetMs) && (!trial.best || step.throughput > trial.best.throughput)) {
          trial.best = { concurrency: step.load, throughput: step.throughput, p99Ms: step.latencyMs.p99, p50Ms: step.latencyMs.p50 };
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
    measured.set(point.join(','), trial);
    return trial.best?.throughput ?? 0;
  };

  const start = pointOfConfig(space, config);
  const startedAt = new Date().toISOString();
  const outcome = options.search === 'grid' ? await gridSearch(space, evaluate) : await hillClimb(space, start, evaluate);
  const winner = outcome.best ? measured.get(outcome.best.join(',')) ?? null : null;
  const current = measured.get(start.join(','));
  const speedup = winner?.best && current?.best ? round(winner.best.throughput / current.best.throughput, 3) : null;
  return {
    kind: 'caliper-tune',
    version: 1,
    model: config.name,
    modelDir: config.dir,
    p99BudgetMs: options.p99BudgetMs,
    search: options.search,
    spaceSize: gridPoints(space).length,
    concurrency,
    windowMs,
    startedAt,
    current: settingsAt(space, start),
    trials,
    winner,
    speedupOverCurrent: speedup,
  };
}
