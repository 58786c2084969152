import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { parseServerStats } from '../../src/bench/server-stats.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport, StepResult } from '../../src/bench/bench-report.ts';
import { renderBenchHtml, renderTuneHtml } from '../../src/bench/html-report.ts';
import type { TuneReport, TuneTrial } from '../../src/bench/tuner.ts';

const step = (load: number, throughput: number, p99: number, stable = true): StepResult => ({
  load,
  stable,
  stability: stable ? 'stable' : 'not stable',
  throughput,
  requests: throughput * 3,
  windows: [1, 2, 3].map(() => ({
    durationMs: 1000,
    requests: throughput,
    throughput,
    errors: 0,
    latencyMs: { p50: p99 / 4, p90: p99 / 2, p95: p99 / 1.5, p99, max: p99 * 2, mean: p99 / 3 },
  })),
  latencyMs: { p50: p99 / 4, p90: p99 / 2, p95: p99 / 1.5, p99, max: p99 * 2, mean: p99 / 3 },
  errors: load > 8 ? { total: 3, byStatus: { '503': 3 } } : { total: 0, byStatus: {} },
  serverTiming: {
    validate: 0.01,
    preprocess: 0.02,
    queue: p99 / 10,
    inference: 0.1,
    postprocess: 0.01,
    total: 0.14 + p99 / 10,
  },
  serverStats: {
    requests: 100,
    executions: 25,
    meanBatchSize: 4,
    cacheHits: 0,
    stageMs: { success: 0.5, queue: p99 / 10, compute_input: 0.02, compute_infer: 0.1, compute_output: 0.01 },
  },
});

const benchReport: BenchReport = {
  kind: 'caliper-bench',
  version: 1,
  startedAt: '2026-01-01T00:00:00.000Z',
  target: {
    url: 'http://127.0.0.1:8000',
    model: 'fraud_detector',
    protocol: 'predict',
    request: 'POST http://127.0.0.1:8000/models/fraud_detector/predict',
    data: 'sample-request.json',
    requests: 1,
  },
  mode: 'concurrency',
  windowMs: 1000,
  warmupMs: 500,
  stabilityRule: { tolerancePct: 10, windows: 3, maxTrials: 10 },
  steps: [step(1, 900, 1.2), step(2, 1700, 1.6), step(4, 3100, 2.5), step(8, 4200, 5.1, false), step(16, 4400, 11.8)],
  warnings: [],
};

const trial = (maxBatchSize: number, throughput: number | null): TuneTrial => ({
  settings: { maxBatchSize, maxQueueDelayUs: 500, instanceCount: 1, instanceKind: 'in_thread', intraOpThreads: 1 },
  description: `batch ≤${maxBatchSize} <&> "quoted"`,
  best: throughput === null ? null : { concurrency: 8, throughput, p99Ms: 4, p50Ms: 1 },
  steps: [1, 2, 4, 8].map((c) => ({
    concurrency: c,
    throughput: (throughput ?? 500) * (c / 8),
    p50Ms: c / 4,
    p99Ms: c,
    errors: 0,
    stable: true,
    meanBatchSize: c / 2,
  })),
});

const tuneReport: TuneReport = {
  kind: 'caliper-tune',
  version: 1,
  model: 'fraud_detector',
  modelDir: '/m',
  p99BudgetMs: 5,
  search: 'quick',
  spaceSize: 40,
  concurrency: [1, 2, 4, 8],
  windowMs: 1000,
  startedAt: '2026-01-01T00:00:00.000Z',
  current: trial(64, 1).settings,
  trials: [trial(64, 3000), trial(32, 3600), trial(16, null)],
  winner: trial(32, 3600),
  speedupOverCurrent: 1.2,
  winnerRule: 'highest throughput',
  elapsedS: 12,
};

describe('HTML reports in headless chromium', () => {
  const dir = mkdtempSync(join(tmpdir(), 'caliper-report-'));
  let context: BrowserContext;
  beforeAll(async () => {
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await context?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const open = async (file: string, html: string) => {
    writeFileSync(file, html);
    const page = await context.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('request', (request) => {
      if (!request.url().startsWith('file:')) requests.push(request.url());
    });
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    return { page, problems, requests };
  };

  it('renders the bench report charts offline without errors', async () => {
    const { page, problems, requests } = await open(join(dir, 'bench.html'), renderBenchHtml(benchReport));
    expect(problems).toEqual([]);
    expect(requests).toEqual([]);
    const charts = await page.$$eval('svg.chart', (svgs) =>
      svgs.map((svg) => {
        const box = svg.getBoundingClientRect();
        return {
          kind: svg.getAttribute('data-chart'),
          width: box.width,
          height: box.height,
          points: svg.querySelectorAll('circle.point').length,
          lines: svg.querySelectorAll('path.series').length,
          bars: svg.querySelectorAll('rect.bar').length,
          title: svg.querySelector('title')?.textContent,
        };
      }),
    );
    expect(charts).toHaveLength(3);
    for (const chart of charts) {
      expect(chart.width).toBeGreaterThan(300);
      expect(chart.height).toBeGreaterThan(200);
    }
    const [latency, breakdown, throughput] = charts;
    expect(latency).toMatchObject({
      kind: 'line',
      points: 4 * 5,
      lines: 4,
      title: 'Latency percentiles against throughput',
    });
    // Server statistics are preferred: queue, compute_input, compute_infer, compute_output + time outside them.
    expect(breakdown!.kind).toBe('stacked-bar');
    expect(breakdown!.bars).toBe(5 * 5);
    expect(breakdown!.title).toContain('server statistics');
    expect(throughput).toMatchObject({ kind: 'line', points: 5, lines: 1 });
    // Every point lies inside its chart.
    const outside = await page.$$eval(
      'svg.chart circle.point',
      (circles) =>
        circles.filter((c) => {
          const box = c.getBoundingClientRect();
          const svg = (c as SVGGraphicsElement).ownerSVGElement!.getBoundingClientRect();
          return (
            box.width === 0 ||
            box.left < svg.left ||
            box.right > svg.right ||
            box.top < svg.top ||
            box.bottom > svg.bottom
          );
        }).length,
    );
    expect(outside).toBe(0);
    const table = await page.$$eval('table tbody tr', (rows) => rows.map((r) => r.textContent));
    expect(table).toHaveLength(5);
    expect(table[3]).toContain('NOT stable');
    expect(table[4]).toContain('503: 3');
    await page.close();
  });

  it('renders the tune report with the budget line and escapes candidate names', async () => {
    const { page, problems, requests } = await open(join(dir, 'tune.html'), renderTuneHtml(tuneReport));
    expect(problems).toEqual([]);
    expect(requests).toEqual([]);
    expect(await page.$$eval('svg.chart', (s) => s.length)).toBe(2);
    expect(await page.$$eval('svg.chart line.threshold', (l) => l.length)).toBe(1);
    expect(await page.$$eval('svg.chart circle.point', (c) => c.length)).toBe(12);
    const text = await page.textContent('body');
    expect(text).toContain('Winner: batch ≤32 <&> "quoted"');
    expect(text).toContain('1.2× the current settings');
    await page.close();
  });
  it('shows every tune candidate with its whole name, distinct styles and the winner highlighted; charts use the page width', async () => {
    const many: TuneTrial[] = Array.from({ length: 15 }, (_, i) => ({
      ...trial(2 ** (i % 7), 1000 + 100 * i),
      description: `batch ≤${2 ** (i % 7)}, delay ${[0, 100, 500, 2000][i % 4]} µs, ${1 + (i % 2)} worker instance(s) × ${1 + (i % 3)} thread(s)`,
    }));
    const report: TuneReport = { ...tuneReport, trials: many, winner: many[14]!, spaceSize: 85 };
    const { page, problems } = await open(join(dir, 'tune-many.html'), renderTuneHtml(report));
    expect(problems).toEqual([]);
    const legend = await page.$$eval('svg.chart[data-chart="line"] g.legend-entry', (entries) =>
      entries.map((g) => {
        const svg = (g as SVGGElement).ownerSVGElement!.getBoundingClientRect();
        const text = g.querySelector('text')!;
        const box = text.getBoundingClientRect();
        const line = g.querySelector('line')!;
        return {
          text: text.textContent,
          bold: text.getAttribute('font-weight') === '700',
          inside:
            box.left >= svg.left &&
            box.right <= svg.right + 0.5 &&
            box.top >= svg.top &&
            box.bottom <= svg.bottom + 0.5,
          style: `${line.getAttribute('stroke')}|${line.getAttribute('stroke-dasharray') ?? ''}`,
        };
      }),
    );
    expect(legend).toHaveLength(15);
    expect(legend.every((e) => e.inside)).toBe(true);
    expect(new Set(legend.map((e) => e.style)).size).toBe(15);
    expect(legend.map((e) => e.text)).toContain(`#15 ★ winner: ${many[14]!.description}`);
    expect(legend.filter((e) => e.bold).map((e) => e.text)).toEqual([`#15 ★ winner: ${many[14]!.description}`]);
    expect(await page.$$eval('svg.chart path.series', (p) => p.length)).toBe(15);
    expect(await page.$$eval('tr.winner', (rows) => rows.map((r) => r.textContent))).toEqual([
      expect.stringContaining(`#15 ★ ${many[14]!.description}`),
    ]);
    await page.screenshot({ path: join(dir, 'tune-many.png'), fullPage: true });
    await page.close();

    const bench = await open(join(dir, 'bench-width.html'), renderBenchHtml(benchReport));
    const widths = await bench.page.$$eval('svg.chart', (svgs) =>
      svgs.map((svg) => svg.getBoundingClientRect().width / document.body.getBoundingClientRect().width),
    );
    expect(widths.every((w) => w > 0.95)).toBe(true);
    await bench.page.close();
  });

  it('names the stages in the bench breakdown as Server-Timing does when the server reports them', () => {
    const snapshot = parseServerStats({
      model_stats: [
        {
          inference_count: 10,
          execution_count: 5,
          inference_stats: {
            success: { count: 10, ns: 9e6 },
            cache_hit: { count: 2, ns: 1e5 },
            compute_input: { count: 10, ns: 1e6 },
          },
          stages: {
            validate: { count: 10, ns: 1e5 },
            preprocess: { count: 10, ns: 2e5 },
            inference: { count: 8, ns: 4e6 },
            total: { count: 10, ns: 9e6 },
          },
        },
      ],
    })!;
    // Caliper's names replace Triton's compute_*; the outcomes stay; 'total' is not a stage.
    expect(Object.keys(snapshot.stages).sort()).toEqual([
      'cache_hit',
      'inference',
      'preprocess',
      'success',
      'validate',
    ]);
  });
});
