import type { BenchReport, StepResult } from './bench-report.ts';
import { OUTCOME_ENTRIES } from './server-stats.ts';
import { escapeXml, lineChart, stackedBarChart } from './svg-chart.ts';
import type { TuneReport } from './tuner.ts';

const PERCENTILES = ['p50', 'p90', 'p95', 'p99'] as const;

const STYLE = `body{font-family:system-ui,sans-serif;margin:24px;color:#111827;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #d1d5db;padding:4px 8px;text-align:right}th{background:#f3f4f6}td.text,th.text{text-align:left}
.meta{color:#4b5563;font-size:13px}.unstable{color:#b45309}.charts svg{display:block;margin:12px 0;width:100%;height:auto}
tr.winner td{background:#ecfdf5;font-weight:600}.winner-note{border-left:4px solid #16a34a;padding:6px 12px;background:#f0fdf4}`;

/** A self-contained HTML page: inline CSS and SVG only, so it opens offline. */
export function htmlPage(title: string, sections: string[]): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style></head>
<body><h1>${escapeXml(title)}</h1>
${sections.join('\n')}
</body></html>
`;
}

export function htmlTable(headers: string[], rows: (string | number)[][], textColumns = 1): string {
  const cell = (tag: string, value: string | number, i: number): string =>
    `<${tag}${i < textColumns ? ' class="text"' : ''}>${escapeXml(String(value))}</${tag}>`;
  return `<table><thead><tr>${headers.map((h, i) => cell('th', h, i)).join('')}</tr></thead><tbody>
${rows.map((row) => `<tr>${row.map((v, i) => cell('td', v, i)).join('')}</tr>`).join('\n')}
</tbody></table>`;
}

export const loadLabel = (report: Pick<BenchReport, 'mode'>, load: number): string =>
  report.mode === 'concurrency' ? `c=${load}` : `${load} rps`;

/** Per-step stage durations (ms): the server's statistics when it has them, else the Server-Timing headers. */
export function stageBreakdown(steps: readonly StepResult[]): {
  source: string;
  stages: string[];
  values: (step: StepResult, stage: string) => number;
} {
  if (
    steps.length > 0 &&
    steps.every((s) => s.serverStats && Object.keys(s.serverStats.stageMs).some((k) => !OUTCOME_ENTRIES.has(k)))
  ) {
    const stages = [...new Set(steps.flatMap((s) => Object.keys(s.serverStats!.stageMs)))].filter(
      (k) => !OUTCOME_ENTRIES.has(k),
    );
    return {
      source: 'the server statistics endpoint',
      stages,
      values: (step, stage) => step.serverStats!.stageMs[stage] ?? 0,
    };
  }
  const stages = [...new Set(steps.flatMap((s) => Object.keys(s.serverTiming)))].filter((k) => k !== 'total');
  return { source: 'Server-Timing response headers', stages, values: (step, stage) => step.serverTiming[stage] ?? 0 };
}

export function latencyChart(
  report: BenchReport,
  title = 'Latency percentiles against throughput',
  budgetMs?: number,
): string {
  return lineChart({
    title,
    xLabel: 'throughput (req/s)',
    yLabel: 'latency (ms)',
    series: PERCENTILES.map((p) => ({
      name: p,
      points: report.steps.map((s) => ({ x: s.throughput, y: s.latencyMs[p], label: loadLabel(report, s.load) })),
    })),
    ...(budgetMs !== undefined ? { threshold: { y: budgetMs, label: `p99 budget ${budgetMs} ms` } } : {}),
  });
}

export function breakdownChart(report: BenchReport): string {
  const breakdown = stageBreakdown(report.steps);
  const serverTotal = (step: StepResult): number =>
    breakdown.stages.reduce((sum, stage) => sum + breakdown.values(step, stage), 0);
  return stackedBarChart({
    title: `Mean time per request by stage (${breakdown.source})`,
    yLabel: 'ms',
    categories: report.steps.map((s) => loadLabel(report, s.load)),
    stacks: [
      ...breakdown.stages.map((stage) => ({
        name: stage,
        values: report.steps.map((s) => breakdown.values(s, stage)),
      })),
      { name: 'network + HTTP', values: report.steps.map((s) => Math.max(0, s.latencyMs.mean - serverTotal(s))) },
    ],
  });
}

export function renderBenchHtml(report: BenchReport): string {
  const loadName = report.mode === 'concurrency' ? 'concurrency' : 'offered rate (req/s)';
  const meta = `<p class="meta">${escapeXml(report.target.request)} · protocol ${report.target.protocol} · ${report.target.requests} distinct request(s) from ${escapeXml(report.target.data)}<br>
${report.mode === 'concurrency' ? 'closed loop (each connection sends its next request when the previous one is answered)' : `open loop, ${report.distribution} arrivals, latency from the scheduled send time`} ·
windows of ${report.windowMs} ms after ${report.warmupMs} ms warm-up; a step is stable when throughput and p99 stay within ±${report.stabilityRule.tolerancePct}% over ${report.stabilityRule.windows} windows (at most ${report.stabilityRule.maxTrials} windows) · started ${escapeXml(report.startedAt)}</p>`;
  const throughput = lineChart({
    title: `Throughput against ${loadName}`,
    xLabel: loadName,
    yLabel: 'req/s',
    series: [{ name: 'throughput', points: report.steps.map((s) => ({ x: s.load, y: s.throughput })) }],
  });
  const rows = report.steps.map((s) => [
    loadLabel(report, s.load),
    s.throughput,
    s.latencyMs.p50,
    s.latencyMs.p90,
    s.latencyMs.p95,
    s.latencyMs.p99,
    s.latencyMs.max,
    s.errors.total === 0
      ? '0'
      : Object.entries(s.errors.byStatus)
          .map(([k, v]) => `${k}: ${v}`)
          .join(', '),
    s.serverStats ? s.serverStats.meanBatchSize : '–',
    `${s.stable ? 'stable' : 'NOT stable'} (${s.windows.length} windows)`,
  ]);
  return htmlPage(`caliper bench: ${report.target.model}`, [
    meta,
    '<div class="charts">',
    latencyChart(report),
    breakdownChart(report),
    throughput,
    '</div>',
    '<h2>Steps</h2>',
    htmlTable(
      ['load', 'req/s', 'p50 ms', 'p90 ms', 'p95 ms', 'p99 ms', 'max ms', 'errors', 'mean batch', 'stability'],
      rows,
    ),
  ]);
}

/** The tuner's report: every candidate's best operating point against the budget, and the winner. */
export function renderTuneHtml(report: TuneReport): string {
  const label = (index: number): string => `#${index + 1}`;
  const isWinner = (t: TuneReport['trials'][number]): boolean =>
    (report.winner !== null && t === report.winner) ||
    (report.winner !== null &&
      t.description === report.winner.description &&
      t.best?.throughput === report.winner.best?.throughput);
  const chart = lineChart({
    title: 'Each candidate: p99 against throughput over its concurrency sweep',
    xLabel: 'throughput (req/s)',
    yLabel: 'p99 (ms)',
    series: report.trials.flatMap((t, i) =>
      t.steps.length === 0
        ? []
        : [
            {
              name: `${label(i)}${isWinner(t) ? ' ★ winner' : ''}: ${t.description}`,
              points: t.steps.map((s) => ({ x: s.throughput, y: s.p99Ms, label: `c=${s.concurrency}` })),
              ...(isWinner(t) ? { emphasis: true } : {}),
            },
          ],
    ),
    threshold: { y: report.p99BudgetMs, label: `p99 budget ${report.p99BudgetMs} ms` },
  });
  const best = stackedBarChart({
    title: 'Best throughput within the budget, per candidate',
    yLabel: 'req/s',
    categories: report.trials.map((t, i) => `${label(i)}${isWinner(t) ? ' ★' : ''}`),
    stacks: [{ name: 'req/s within budget', values: report.trials.map((t) => t.best?.throughput ?? 0) }],
  });
  const rows = report.trials.map((t, i) => [
    `${label(i)}${isWinner(t) ? ' ★' : ''} ${t.description}${i === 0 ? ' (current settings)' : ''}`,
    t.best ? t.best.throughput : 0,
    t.best ? t.best.concurrency : '–',
    t.best ? t.best.p99Ms : '–',
    t.error ?? (t.best ? 'within budget' : 'over budget at every level'),
  ]);
  const winner = report.winner
    ? `<p class="winner-note"><b>★ Winner:</b> ${escapeXml(report.winner.description)} — ${report.winner.best!.throughput} req/s at concurrency ${report.winner.best!.concurrency}, p99 ${report.winner.best!.p99Ms} ms${report.speedupOverCurrent !== null ? ` (${report.speedupOverCurrent}× the current settings)` : ''}<br><span class="meta">Chosen as ${escapeXml(report.winnerRule ?? 'the highest throughput within the budget')}.</span></p>`
    : '<p><b>No candidate met the budget.</b></p>';
  const table = htmlTable(['candidate', 'req/s', 'at concurrency', 'p99 ms', 'outcome'], rows)
    .split('\n')
    .map((line, i) =>
      i >= 1 && report.trials[i - 1] && isWinner(report.trials[i - 1]!)
        ? line.replace('<tr>', '<tr class="winner">')
        : line,
    )
    .join('\n');
  return htmlPage(`caliper tune: ${report.model}`, [
    `<p class="meta">p99 budget ${report.p99BudgetMs} ms · ${report.search} search: ${report.trials.length} of ${report.spaceSize} candidates measured · concurrency ${report.concurrency.join(',')} · ${report.windowMs} ms windows · started ${escapeXml(report.startedAt)}</p>`,
    winner,
    '<div class="charts">',
    chart,
    best,
    '</div>',
    table,
  ]);
}
