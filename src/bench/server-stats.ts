import { round } from './measurement-window.ts';

/**
 * The server's own view of a step, from GET /v2/models/{name}/stats (the Open Inference Protocol statistics
 * extension, as Triton shapes it): per-stage durations as {count, ns} pairs, and inference vs execution
 * counts, which give the mean batch size.
 */
export interface ServerStatsSnapshot {
  inferenceCount: number;
  executionCount: number;
  /** Stage name → cumulative count and nanoseconds. */
  stages: Record<string, { count: number; ns: number }>;
}

/** The difference of two snapshots: what the server did during the measured windows. */
export interface ServerBreakdown {
  requests: number;
  executions: number;
  /** Inferences per model execution; 1 without batching. */
  meanBatchSize: number;
  /** Requests answered from the response cache (the statistics' cache_hit count). */
  cacheHits: number;
  /** Stage name → mean milliseconds per request. */
  stageMs: Record<string, number>;
}

export type StatsFetch = (url: string) => Promise<{ ok: boolean; status: number; json(): Promise<unknown> }>;

export function statsUrl(baseUrl: string, model: string): string {
  return `${baseUrl.replace(/\/$/, '')}/v2/models/${encodeURIComponent(model)}/stats`;
}

/** Reads the statistics; resolves undefined when the server has no stats endpoint or the shape is not recognised. */
export async function fetchServerStats(
  baseUrl: string,
  model: string,
  fetcher: StatsFetch = fetch,
): Promise<ServerStatsSnapshot | undefined> {
  try {
    const response = await fetcher(statsUrl(baseUrl, model));
    if (!response.ok) return undefined;
    return parseServerStats(await response.json());
  } catch {
    return undefined;
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const numberOf = (value: unknown): number =>
  typeof value === 'number' ? value : typeof value === 'string' ? Number(value) || 0 : 0;

/** inference_stats entries that count outcomes, not stages of a request. */
export const OUTCOME_ENTRIES = new Set(['success', 'fail', 'cache_hit', 'cache_miss']);

/** Sums the statistics of every version listed under model_stats. */
export function parseServerStats(document: unknown): ServerStatsSnapshot | undefined {
  if (!isRecord(document) || !Array.isArray(document.model_stats)) return undefined;
  const snapshot: ServerStatsSnapshot = { inferenceCount: 0, executionCount: 0, stages: {} };
  for (const entry of document.model_stats) {
    if (!isRecord(entry)) continue;
    snapshot.inferenceCount += numberOf(entry.inference_count);
    snapshot.executionCount += numberOf(entry.execution_count);
    // Caliper's own stage names (as in Server-Timing) when the server reports them; Triton's otherwise.
    // Outcomes (success, fail, cache hits) come from the extension's inference_stats either way.
    const ownStages = isRecord(entry.stages) ? entry.stages : undefined;
    const add = (stage: string, value: unknown): void => {
      if (!isRecord(value) || !('ns' in value)) return;
      const sum = (snapshot.stages[stage] ??= { count: 0, ns: 0 });
      sum.count += numberOf(value.count);
      sum.ns += numberOf(value.ns);
    };
    if (isRecord(entry.inference_stats)) {
      for (const [stage, value] of Object.entries(entry.inference_stats)) {
        if (!ownStages || OUTCOME_ENTRIES.has(stage)) add(stage, value);
      }
    }
    if (ownStages) for (const [stage, value] of Object.entries(ownStages)) if (stage !== 'total') add(stage, value);
  }
  return snapshot;
}

export function diffServerStats(before: ServerStatsSnapshot, after: ServerStatsSnapshot): ServerBreakdown {
  const requests = after.inferenceCount - before.inferenceCount;
  const executions = after.executionCount - before.executionCount;
  const stageMs: Record<string, number> = {};
  for (const [stage, end] of Object.entries(after.stages)) {
    const start = before.stages[stage] ?? { count: 0, ns: 0 };
    const count = end.count - start.count;
    if (count > 0) stageMs[stage] = round((end.ns - start.ns) / count / 1e6, 4);
  }
  const cacheHits = (after.stages.cache_hit?.count ?? 0) - (before.stages.cache_hit?.count ?? 0);
  return {
    requests,
    executions,
    meanBatchSize: executions > 0 ? round(requests / executions, 2) : 0,
    cacheHits,
    stageMs,
  };
}

/**
 * Why a step's figures may not measure the model: most answers came from the response cache, or the server ran
 * almost no model executions for the requests it answered. Empty when the step looks like real inference work.
 */
export function measurementWarnings(step: {
  load: number;
  requests: number;
  serverStats: ServerBreakdown | null;
}): string[] {
  const stats = step.serverStats;
  if (!stats || step.requests === 0) return [];
  const warnings: string[] = [];
  const answered = Math.max(stats.requests + stats.cacheHits, 1); // inference_count leaves cache hits out, as Triton's
  if (stats.cacheHits > 0.5 * answered) {
    warnings.push(
      `load ${step.load}: the response cache answered ${stats.cacheHits} of ${answered} requests (${Math.round((100 * stats.cacheHits) / answered)}%); the figures measure the cache, not the model — send more distinct requests than the cache holds (--requests N, or --data) or turn the cache off`,
    );
  } else if (stats.executions <= Math.max(1, 0.01 * step.requests)) {
    warnings.push(
      `load ${step.load}: the server ran only ${stats.executions} model execution(s) for ${step.requests} requests; the figures do not measure inference`,
    );
  }
  return warnings;
}
