/**
 * The pipeline's stage names, in the order a request passes through them (the stages themselves, and why this
 * order, are in stage-list.ts). Server-Timing, statistics and metrics name stages from this list.
 */
export const PIPELINE_STAGES = [
  'validate',
  'features',
  'cache',
  'preprocess',
  'queue',
  'inference',
  'postprocess',
] as const;
export type PipelineStage = (typeof PIPELINE_STAGES)[number];

/** Milliseconds spent in each stage of one request (stages it skipped are absent), plus the total. */
export type StageTimings = Partial<Record<PipelineStage, number>> & { total: number };

const DUR_PREFIX = PIPELINE_STAGES.map((stage) => `${stage};dur=`);

/** `ms.toFixed(3)` by integer arithmetic, about twice as fast; this header is written on every prediction. */
function fixed3(ms: number): string {
  const us = Math.round(ms * 1000);
  if (!(us >= 0 && us <= Number.MAX_SAFE_INTEGER)) return ms.toFixed(3);
  const frac = us % 1000;
  return `${(us - frac) / 1000}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

/** Renders a Server-Timing header value: `validate;dur=0.004, ..., total;dur=0.412`. */
export function serverTimingHeader(timings: StageTimings): string {
  let header = '';
  for (let i = 0; i < PIPELINE_STAGES.length; i++) {
    const ms = timings[PIPELINE_STAGES[i]!];
    if (ms !== undefined) header += `${DUR_PREFIX[i]}${fixed3(ms)}, `;
  }
  return `${header}total;dur=${fixed3(timings.total)}`;
}
