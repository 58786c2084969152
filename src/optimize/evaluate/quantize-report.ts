import type { LatencyComparison } from './latency.ts';
import type { AccuracyComparison, OutputDifference } from './output-comparison.ts';

/** What `caliper quantize` reports: size, output difference, accuracy and latency, before vs after. */
export interface QuantizeReport {
  mode: 'dynamic' | 'static' | 'fp16';
  settings: Record<string, string | number | boolean | string[]>;
  size: { beforeBytes: number; afterBytes: number; ratio: number };
  /** Nodes rewritten (quantized, or converted to float16). */
  convertedNodes: number;
  /** Op types left in float32, with their counts. */
  floatOps: Record<string, number>;
  warnings: string[];
  outputDifference: OutputDifference & { source: string };
  accuracy?: AccuracyComparison & { source: string };
  latency: LatencyComparison[];
  opset: number;
  irVersion: number;
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const kib = (bytes: number) => (bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`);

/** The report as aligned plain text for the terminal. */
export function formatQuantizeReport(report: QuantizeReport): string {
  const lines = [
    `mode            ${report.mode} (${Object.entries(report.settings).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') || '-' : v}`).join(', ')})`,
    `size            ${kib(report.size.beforeBytes)} → ${kib(report.size.afterBytes)}  (${report.size.ratio.toFixed(3)}×)`,
    `nodes converted ${report.convertedNodes}; left in float: ${Object.entries(report.floatOps).map(([op, n]) => `${op}×${n}`).join(' ') || 'none'}`,
    `output diff     max ${report.outputDifference.maxAbs.toExponential(3)}, mean ${report.outputDifference.meanAbs.toExponential(3)} over ${report.outputDifference.samples} samples (${report.outputDifference.source})`,
  ];
  if (report.accuracy) {
    const a = report.accuracy;
    lines.push(`accuracy        ${pct(a.before)} → ${pct(a.after)} (${((a.after - a.before) * 100).toFixed(2)} pt), agreement ${pct(a.agreement)} over ${a.samples} samples`);
  }
  for (const l of report.latency) {
    lines.push(`latency b=${String(l.batchSize).padEnd(4)} ${l.beforeMs.toFixed(3)} ms → ${l.afterMs.toFixed(3)} ms  (${l.speedup.toFixed(2)}× faster, 1 intra-op thread)`);
  }
  for (const w of report.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
