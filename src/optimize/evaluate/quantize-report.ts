import type { KernelSummary } from './kernel-profile.ts';
import type { LatencyComparison } from './latency.ts';
import { formatVerdict, sizeWords, speedWords, type GuardVerdict } from './optimization-guard.ts';
import type { AccuracyComparison, OutputDifference, RegressionComparison } from './output-comparison.ts';

/** What `caliper quantize` reports: size, output difference, accuracy and latency, before vs after, and the guard's verdict. */
export interface QuantizeReport {
  mode: 'dynamic' | 'static' | 'fp16';
  settings: Record<string, string | number | boolean | string[]>;
  size: { beforeBytes: number; afterBytes: number; ratio: number };
  /** Nodes rewritten (quantized, or converted to float16). */
  convertedNodes: number;
  /** Op types left in float32, with their counts. */
  floatOps: Record<string, number>;
  /** INT8 modes: the kernels ONNX Runtime's profiler saw run after its fusions, quantized vs float. */
  kernels?: KernelSummary;
  warnings: string[];
  outputDifference: OutputDifference & { source: string };
  accuracy?: AccuracyComparison & { source: string };
  regression?: RegressionComparison & { source: string };
  latency: LatencyComparison[];
  guard: GuardVerdict;
  opset: number;
  irVersion: number;
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const kib = (bytes: number) =>
  bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
const counts = (c: Record<string, number>) =>
  Object.entries(c)
    .map(([op, n]) => `${op}×${n}`)
    .join(' ') || 'none';

/** The report as aligned plain text for the terminal. */
export function formatQuantizeReport(report: QuantizeReport): string {
  const lines = [
    `mode            ${report.mode} (${Object.entries(report.settings)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') || '-' : v}`)
      .join(', ')})`,
    `size            ${kib(report.size.beforeBytes)} → ${kib(report.size.afterBytes)}  (${sizeWords(report.size.beforeBytes, report.size.afterBytes)})`,
    `nodes converted ${report.convertedNodes}; left in float: ${counts(report.floatOps)}`,
  ];
  if (report.kernels) {
    lines.push(
      `kernels run     quantized: ${counts(report.kernels.quantized)}; float: ${counts(report.kernels.float)}; boundaries: ${counts(report.kernels.boundaries)}`,
    );
    const { nodes } = report.kernels;
    if (nodes.quantized.length) lines.push(`  ran quantized ${nodes.quantized.join(', ')}`);
    if (nodes.float.length) lines.push(`  ran in float  ${nodes.float.join(', ')}`);
  }
  lines.push(
    `output diff     max ${report.outputDifference.maxAbs.toExponential(3)}, mean ${report.outputDifference.meanAbs.toExponential(3)} over ${report.outputDifference.samples} samples (${report.outputDifference.source})`,
  );
  if (report.accuracy) {
    const a = report.accuracy;
    lines.push(
      `accuracy        ${pct(a.before)} → ${pct(a.after)} (${((a.after - a.before) * 100).toFixed(2)} pt), agreement ${pct(a.agreement)} over ${a.samples} samples${a.decision && a.decision !== 'argmax' ? ` (class: ${a.decision})` : ''}`,
    );
  }
  if (report.regression) {
    const r = report.regression;
    lines.push(
      `error           MAE ${r.before.mae.toPrecision(4)} → ${r.after.mae.toPrecision(4)}, RMSE ${r.before.rmse.toPrecision(4)} → ${r.after.rmse.toPrecision(4)} over ${r.samples} samples`,
    );
  }
  for (const l of report.latency) {
    lines.push(
      `latency b=${String(l.batchSize).padEnd(4)} ${l.beforeMs.toFixed(3)} ms → ${l.afterMs.toFixed(3)} ms  (${speedWords(l.beforeMs, l.afterMs)}, 1 intra-op thread)`,
    );
  }
  lines.push(...formatVerdict(report.guard));
  for (const w of report.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

/** The report's figures as flat registry metrics (`caliper models show` lists them next to the version). */
export function quantizeMetrics(report: QuantizeReport): Record<string, number> {
  const metrics: Record<string, number> = {
    size_before_bytes: report.size.beforeBytes,
    size_after_bytes: report.size.afterBytes,
    size_ratio: report.size.ratio,
    output_max_abs_diff: report.outputDifference.maxAbs,
  };
  if (report.accuracy) {
    metrics.accuracy_before = report.accuracy.before;
    metrics.accuracy_after = report.accuracy.after;
    metrics.agreement = report.accuracy.agreement;
  }
  if (report.regression) {
    metrics.mae_before = report.regression.before.mae;
    metrics.mae_after = report.regression.after.mae;
    metrics.rmse_before = report.regression.before.rmse;
    metrics.rmse_after = report.regression.after.rmse;
  }
  for (const l of report.latency) {
    metrics[`latency_b${l.batchSize}_before_ms`] = l.beforeMs;
    metrics[`latency_b${l.batchSize}_after_ms`] = l.afterMs;
    metrics[`speedup_b${l.batchSize}`] = l.speedup;
  }
  return metrics;
}
