/**
 * Small, dependency-free SVG charts for the HTML reports: a line chart over a numeric x axis and a stacked
 * bar chart over categories. Output is a standalone <svg> string (no scripts, no external resources).
 */

export interface Series {
  name: string;
  points: { x: number; y: number; label?: string }[];
  /** Drawn thicker and first in the legend's reading order (e.g. a tuning winner). */
  emphasis?: boolean;
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** A horizontal reference line, e.g. a latency budget. */
  threshold?: { y: number; label: string };
}

export interface StackedBarSpec {
  title: string;
  yLabel: string;
  categories: string[];
  /** One entry per stacked segment; values align with `categories`. */
  stacks: { name: string; values: number[] }[];
}

const WIDTH = 1000;
const HEIGHT = 380;
const MARGIN = { top: 40, right: 24, bottom: 52, left: 68 };
export const PALETTE = [
  '#2563eb',
  '#16a34a',
  '#d97706',
  '#dc2626',
  '#7c3aed',
  '#0891b2',
  '#db2777',
  '#65a30d',
  '#475569',
];
/** Dash patterns combined with the palette, so up to 36 series look distinct. */
const DASHES = ['', '8 4', '2 3', '10 3 2 3'];
/** Legend text is laid out at about this many pixels per character (12px system-ui). */
const LEGEND_CHAR_PX = 6.8;

/** The stroke of series `i`: a colour and, past the palette's length, a dash pattern. */
export function seriesStyle(i: number): { color: string; dash: string } {
  return { color: PALETTE[i % PALETTE.length]!, dash: DASHES[Math.floor(i / PALETTE.length) % DASHES.length]! };
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** About five round tick values covering [0, max]. */
export function niceTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough)!;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

const formatTick = (v: number): string =>
  Math.abs(v) >= 1000 ? `${Number((v / 1000).toPrecision(3))}k` : String(Number(v.toPrecision(4)));

interface LegendEntry {
  name: string;
  color: string;
  dash?: string;
  emphasis?: boolean;
}

/**
 * The chart's frame, with the legend laid out below the plot in as many rows as it needs: entries flow left
 * to right and wrap at the chart's width, so no name is cut off however long or however many.
 */
function frame(title: string, body: string[], legend: LegendEntry[], role: string): string {
  const rowHeight = 20;
  const items: string[] = [];
  let x = MARGIN.left;
  let row = 0;
  for (const entry of legend) {
    const width = 30 + entry.name.length * LEGEND_CHAR_PX + 18;
    if (x > MARGIN.left && x + width > WIDTH - MARGIN.right) {
      x = MARGIN.left;
      row++;
    }
    const y = HEIGHT + 8 + row * rowHeight;
    const swatch = `<line x1="${x}" x2="${x + 24}" y1="${y - 4}" y2="${y - 4}" stroke="${entry.color}" stroke-width="${entry.emphasis ? 5 : 3}"${entry.dash ? ` stroke-dasharray="${entry.dash}"` : ''}/>`;
    items.push(
      `<g class="legend-entry">${swatch}<text x="${x + 30}" y="${y}" font-size="12"${entry.emphasis ? ' font-weight="700"' : ''}>${escapeXml(entry.name)}</text></g>`,
    );
    x += width;
  }
  const height = HEIGHT + (legend.length > 0 ? 16 + (row + 1) * rowHeight : 0);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="${role}" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-label="${escapeXml(title)}" font-family="system-ui, sans-serif">`,
    `<title>${escapeXml(title)}</title>`,
    `<text x="${MARGIN.left}" y="22" font-size="15" font-weight="600">${escapeXml(title)}</text>`,
    ...body,
    ...items,
    '</svg>',
  ].join('\n');
}

function axes(xLabel: string, yLabel: string, yTicks: number[], yScale: (v: number) => number): string[] {
  const plotRight = WIDTH - MARGIN.right;
  const plotBottom = HEIGHT - MARGIN.bottom;
  const out = yTicks.map((t) => {
    const y = yScale(t);
    return `<line x1="${MARGIN.left}" x2="${plotRight}" y1="${y}" y2="${y}" stroke="#e5e7eb"/><text x="${MARGIN.left - 6}" y="${y + 4}" font-size="11" text-anchor="end">${formatTick(t)}</text>`;
  });
  out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${plotBottom}" stroke="#374151"/>`);
  out.push(`<line x1="${MARGIN.left}" x2="${plotRight}" y1="${plotBottom}" y2="${plotBottom}" stroke="#374151"/>`);
  out.push(
    `<text x="${(MARGIN.left + plotRight) / 2}" y="${HEIGHT - 12}" font-size="12" text-anchor="middle">${escapeXml(xLabel)}</text>`,
  );
  out.push(
    `<text transform="translate(16 ${(MARGIN.top + plotBottom) / 2}) rotate(-90)" font-size="12" text-anchor="middle">${escapeXml(yLabel)}</text>`,
  );
  return out;
}

export function lineChart(spec: LineChartSpec): string {
  const points = spec.series.flatMap((s) => s.points);
  const xMax = Math.max(0, ...points.map((p) => p.x));
  const yMax = Math.max(0, ...points.map((p) => p.y), spec.threshold?.y ?? 0);
  const xTicks = niceTicks(xMax);
  const yTicks = niceTicks(yMax);
  const plotRight = WIDTH - MARGIN.right;
  const plotBottom = HEIGHT - MARGIN.bottom;
  const xScale = (v: number): number =>
    round1(MARGIN.left + (v / xTicks[xTicks.length - 1]!) * (plotRight - MARGIN.left));
  const yScale = (v: number): number =>
    round1(plotBottom - (v / yTicks[yTicks.length - 1]!) * (plotBottom - MARGIN.top));
  const body = axes(spec.xLabel, spec.yLabel, yTicks, yScale);
  for (const t of xTicks)
    body.push(
      `<text x="${xScale(t)}" y="${plotBottom + 16}" font-size="11" text-anchor="middle">${formatTick(t)}</text>`,
    );
  if (spec.threshold) {
    const y = yScale(spec.threshold.y);
    body.push(
      `<line class="threshold" x1="${MARGIN.left}" x2="${plotRight}" y1="${y}" y2="${y}" stroke="#dc2626" stroke-dasharray="6 4"/><text x="${plotRight - 4}" y="${y - 5}" font-size="11" text-anchor="end" fill="#dc2626">${escapeXml(spec.threshold.label)}</text>`,
    );
  }
  spec.series.forEach((series, i) => {
    const { color, dash } = seriesStyle(i);
    const path = series.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${xScale(p.x)},${yScale(p.y)}`).join(' ');
    if (series.points.length > 1)
      body.push(
        `<path class="series${series.emphasis ? ' emphasis' : ''}" d="${path}" fill="none" stroke="${color}" stroke-width="${series.emphasis ? 4 : 2}"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
      );
    for (const p of series.points) {
      const tip = `${series.name}: ${formatValue(p.y)} ${spec.yLabel} at ${formatValue(p.x)} ${spec.xLabel}${p.label ? ` (${p.label})` : ''}`;
      body.push(
        `<circle class="point" cx="${xScale(p.x)}" cy="${yScale(p.y)}" r="3.5" fill="${color}"><title>${escapeXml(tip)}</title></circle>`,
      );
    }
  });
  return frame(
    spec.title,
    body,
    spec.series.map((s, i) => ({ name: s.name, ...seriesStyle(i), ...(s.emphasis ? { emphasis: true } : {}) })),
    'line',
  );
}

export function stackedBarChart(spec: StackedBarSpec): string {
  const totals = spec.categories.map((_, i) => spec.stacks.reduce((sum, s) => sum + Math.max(0, s.values[i] ?? 0), 0));
  const yTicks = niceTicks(Math.max(0, ...totals));
  const plotRight = WIDTH - MARGIN.right;
  const plotBottom = HEIGHT - MARGIN.bottom;
  const yScale = (v: number): number =>
    round1(plotBottom - (v / yTicks[yTicks.length - 1]!) * (plotBottom - MARGIN.top));
  const body = axes('', spec.yLabel, yTicks, yScale);
  const slot = (plotRight - MARGIN.left) / Math.max(1, spec.categories.length);
  const barWidth = round1(Math.min(60, slot * 0.6));
  spec.categories.forEach((category, i) => {
    const x = round1(MARGIN.left + slot * i + (slot - barWidth) / 2);
    let base = 0;
    spec.stacks.forEach((stack, k) => {
      const value = Math.max(0, stack.values[i] ?? 0);
      if (value === 0) return;
      const top = yScale(base + value);
      const height = round1(yScale(base) - top);
      body.push(
        `<rect class="bar" x="${x}" y="${top}" width="${barWidth}" height="${Math.max(height, 0.5)}" fill="${PALETTE[k % PALETTE.length]}"><title>${escapeXml(`${category}: ${stack.name} ${formatValue(value)} ${spec.yLabel}`)}</title></rect>`,
      );
      base += value;
    });
    body.push(
      `<text x="${round1(x + barWidth / 2)}" y="${plotBottom + 16}" font-size="11" text-anchor="middle">${escapeXml(category)}</text>`,
    );
  });
  return frame(
    spec.title,
    body,
    spec.stacks.map((s, k) => ({ name: s.name, color: PALETTE[k % PALETTE.length]! })),
    'stacked-bar',
  );
}

const round1 = (v: number): number => Math.round(v * 10) / 10;
const formatValue = (v: number): string => String(Number(v.toPrecision(4)));
