/** The pipeline's stages, in the order a request passes through them. Timing, metrics and tracing hang off this list. */
export const PIPELINE_STAGES = ['validate', 'features', 'preprocess', 'cache', 'queue', 'inference', 'postprocess'] as const;
export type PipelineStage = (typeof PIPELINE_STAGES)[number];

/** Milliseconds spent in each stage of one request (stages it skipped are absent), plus the total. */
export type StageTimings = Partial<Record<PipelineStage, number>> & { total: number };

/** Renders a Server-Timing header value: `validate;dur=0.004, ..., total;dur=0.412`. */
export function serverTimingHeader(timings: StageTimings): string {
  const parts: string[] = [];
  for (const stage of PIPELINE_STAGES) {
    const ms = timings[stage];
    if (ms !== undefined) parts.push(`${stage};dur=${ms.toFixed(3)}`);
  }
  parts.push(`total;dur=${timings.total.toFixed(3)}`);
  return parts.join(', ');
}
