import { htmlPage, htmlTable } from '../bench/html-report.ts';
import { escapeXml, niceTicks, PALETTE } from '../bench/svg-chart.ts';
import type { DoctorReport } from './doctor-report.ts';
import { PROFILE_STAGES, type ProfileStage, type StageProfile } from './stage-profile.ts';

const WIDTH = 1000;
const ROW = 34;
const LEFT = 150;
const RIGHT = 24;

/**
 * A waterfall of the p99 tail: one row per measurement (before, each kept remedy, after), each stage a segment
 * starting where the previous one ended, so a request's time reads left to right as it passed the stages; the
 * budget is a vertical line.
 */
export function waterfallChart(rows: { label: string; profile: StageProfile }[], budgetMs: number): string {
  const stages = PROFILE_STAGES.filter((s) => rows.some((r) => (r.profile.tailMs[s] ?? 0) > 0));
  const totals = rows.map((r) => stages.reduce((sum, s) => sum + (r.profile.tailMs[s] ?? 0), 0));
  const ticks = niceTicks(Math.max(budgetMs, ...totals) * 1.05);
  const max = ticks[ticks.length - 1]!;
  const top = 44;
  const plotBottom = top + rows.length * ROW;
  const height = plotBottom + 70;
  const x = (ms: number): number => Math.round((LEFT + (ms / max) * (WIDTH - LEFT - RIGHT)) * 10) / 10;
  const parts: string[] = [
    `<text x="${WIDTH / 2}" y="22" font-size="15" font-weight="600" text-anchor="middle">Where the p99 tail's time goes, stage by stage (ms)</text>`,
  ];
  for (const tick of ticks) {
    parts.push(
      `<line x1="${x(tick)}" y1="${top}" x2="${x(tick)}" y2="${plotBottom}" stroke="#e5e7eb"/><text x="${x(tick)}" y="${plotBottom + 16}" font-size="11" text-anchor="middle">${tick}</text>`,
    );
  }
  rows.forEach((row, i) => {
    const y = top + i * ROW + 6;
    parts.push(`<text x="${LEFT - 8}" y="${y + 15}" font-size="12" text-anchor="end">${escapeXml(row.label)}</text>`);
    let start = 0;
    stages.forEach((stage, k) => {
      const ms = row.profile.tailMs[stage] ?? 0;
      if (ms <= 0) return;
      const width = Math.max(0.5, x(start + ms) - x(start));
      parts.push(
        `<rect class="segment" data-stage="${stage}" x="${x(start)}" y="${y}" width="${Math.round(width * 10) / 10}" height="${ROW - 12}" fill="${PALETTE[k % PALETTE.length]}"><title>${escapeXml(`${row.label}: ${stage} ${ms.toFixed(2)} ms (from ${start.toFixed(2)} ms)`)}</title></rect>`,
      );
      start += ms;
    });
  });
  parts.push(
    `<line class="budget" x1="${x(budgetMs)}" y1="${top - 6}" x2="${x(budgetMs)}" y2="${plotBottom}" stroke="#dc2626" stroke-width="2" stroke-dasharray="6 3"/><text x="${x(budgetMs) + 4}" y="${top - 8}" font-size="11" fill="#dc2626">p99 budget ${budgetMs} ms</text>`,
  );
  let legendX = LEFT;
  stages.forEach((stage, k) => {
    parts.push(
      `<rect x="${legendX}" y="${plotBottom + 32}" width="12" height="12" fill="${PALETTE[k % PALETTE.length]}"/><text x="${legendX + 16}" y="${plotBottom + 42}" font-size="12">${stage}</text>`,
    );
    legendX += 24 + stage.length * 7;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart waterfall" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="p99 tail waterfall">${parts.join('')}</svg>`;
}

const ms = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : v.toFixed(2));

/** The doctor's HTML report: diagnosis, per-stage before/after table, remedy outcomes, waterfall, model.yaml diff. */
export function renderDoctorHtml(report: DoctorReport): string {
  const after = report.after;
  const load =
    report.load.mode === 'rate' ? `${report.load.rate} requests/s` : `${report.load.concurrency} connections`;
  const sections: string[] = [
    `<p class="meta">${escapeXml(report.target)} · model ${escapeXml(report.model)} · ${escapeXml(load)} · ${report.data.requests} requests in the sample (${report.data.distinct} distinct) · ${escapeXml(report.startedAt)} · ${report.elapsedS} s</p>`,
    `<p class="winner-note"${report.met ? '' : ' style="border-color:#dc2626;background:#fef2f2"'}>${report.met ? 'Budget met' : 'Budget not met'}: p99 ${ms(report.before.profile.latencyMs.p99)} ms before${after ? `, ${ms(after.profile.latencyMs.p99)} ms after (measured again on a fresh server)` : ''}, budget ${report.budgetMs} ms.</p>`,
    '<h2>Diagnosis</h2>',
    `<ul>${report.before.diagnosis.findings.map((f) => `<li>${escapeXml(f)}</li>`).join('')}${report.advice.map((a) => `<li>${escapeXml(a)}</li>`).join('')}</ul>`,
    '<h2>Per stage, p99 tail (ms)</h2>',
  ];
  const stages = PROFILE_STAGES.filter(
    (s: ProfileStage) => report.before.profile.tailMs[s] !== undefined || after?.profile.tailMs[s] !== undefined,
  );
  const rows: (string | number)[][] = stages.map((s) => [
    s + (report.before.diagnosis.culprits.includes(s) ? ' (over budget)' : ''),
    ms(report.before.profile.meanMs[s]),
    ms(report.before.profile.tailMs[s]),
    ...(after ? [ms(after.profile.meanMs[s]), ms(after.profile.tailMs[s])] : []),
  ]);
  rows.push([
    'p99 latency (client)',
    '',
    ms(report.before.profile.latencyMs.p99),
    ...(after ? ['', ms(after.profile.latencyMs.p99)] : []),
  ]);
  sections.push(
    htmlTable(['stage', 'mean before', 'tail before', ...(after ? ['mean after', 'tail after'] : [])], rows),
  );
  if (report.trials.length > 0) {
    sections.push('<h2>Remedies, in the order tried</h2>');
    sections.push(
      htmlTable(
        ['remedy', 'stage', 'outcome', 'detail', 'p99 before', 'p99 after'],
        report.trials.map((t) => [t.title, t.stage, t.outcome, t.detail, ms(t.p99BeforeMs), ms(t.p99AfterMs)]),
        4,
      ),
    );
  }
  const chartRows = [{ label: 'before', profile: report.before.profile }];
  for (const t of report.trials)
    if (t.outcome === 'kept' && t.profile) chartRows.push({ label: `+ ${t.remedy}`, profile: t.profile });
  if (after) chartRows.push({ label: 'after (again)', profile: after.profile });
  sections.push(`<div class="charts">${waterfallChart(chartRows, report.budgetMs)}</div>`);
  if (report.changes.yamlDiff) {
    sections.push('<h2>model.yaml</h2>');
    sections.push(`<pre class="diff">${escapeXml(report.changes.yamlDiff)}</pre>`);
  }
  if (report.changes.modelFile)
    sections.push(`<p class="meta">optimized model: ${escapeXml(report.changes.modelFile)}</p>`);
  if (report.applied)
    sections.push(`<p class="meta">applied as version ${report.applied.version}: ${escapeXml(report.applied.dir)}</p>`);
  if (report.registered)
    sections.push(
      `<p class="meta">registered as models:/${escapeXml(report.registered.name)}/${report.registered.version} (${report.registered.stage})</p>`,
    );
  return htmlPage(`caliper doctor: ${report.model}`, sections);
}
