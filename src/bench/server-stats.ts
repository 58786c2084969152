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
  /** Stage name → mean milliseconds per request. */
  stageMs: Record<string, number>;
}

export type StatsFetch = (url: string) => Promise<{ ok: boolean; status: number; json(): Promise<unknown> }>;

export function statsUrl(baseUrl: string, model: string): string {
  return `${baseUrl.replace(/\/$/, '')}/v2/models/${encodeURIComponent(model)}/stats`;
}

/** Reads the statistics; resolves undefined when the server has no stats endpoint or the shape is not recognised. */
export async function fetchServerStats(baseUrl: string, model: string, fetcher: StatsFetch = fetch): Promise<ServerStatsSnapshot | undefined> {
  try {
    const response = await fetcher(statsUrl(baseUrl, model));
    if (!response.ok) return undefined;
    return parseServerStats(await response.json());
  } catch {
    return undefined;
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const numberOf = (value: unknown): number => (typeof value === 'number' ? value : typeof value === 'string' ? Number(value) || 0 : 0);

/** Sums the statistics of every version listed under model_stats. */
export function parseServerStats(document: unknown): ServerStatsSnapshot | undefined {
  if (!isRecord(document) || !Array.isArray(document.model_stats)) return undefined;
  const snapshot: ServerStatsSnapshot = { inferenceCount: 0, executionCount: 0, stages: {} };
  for (const entry of document.model_stats) {
    if (!isRecord(entry)) continue;
    snapshot.inferenceCount += numberOf(entry.inference_count);
    snapshot.executionCount += numberOf(entry.execution_count);
    if (!isRecord(entry.inference_stats)) continue;
    for (const [stage, value] of Object.entries(entry.inference_stats)) {
      if (!isRecord(value) || !('ns' in value)) continue;
      const sum = (snapshot.stages[stage] ??= { count: 0, ns: 0 });
      sum.count += numberOf(value.count);
      sum.ns += numberOf(value.ns);
    }
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
  return { requests, executions, meanBatchSize: executions > 0 ? round(requests / executions, 2) : 0, stageMs };
}
