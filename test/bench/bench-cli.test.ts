import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/bench/bench-report.ts';
import { synthesizeRequests } from '../../src/bench/request-synthesizer.ts';
import { registerBenchCommand } from '../../src/cli/bench.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';

const fraud = join(import.meta.dirname, '../../examples/fraud-detector');

/** Runs `caliper bench …` in this process and returns its JSON report and what it logged. */
async function bench(...args: string[]): Promise<{ report: BenchReport; log: string }> {
  const program = new Command()
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  registerBenchCommand(program);
  let stdout = '';
  let log = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string) => {
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => {
    log += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    await program.parseAsync([
      'node',
      'caliper',
      'bench',
      ...args,
      '--json',
      '--duration',
      '0.3',
      '--warmup',
      '0.2',
      '--max-trials',
      '3',
      '--stability-pct',
      '100',
    ]);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  return { report: JSON.parse(stdout) as BenchReport, log };
}

describe('caliper bench request data', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServing({ paths: [fraud], port: 0, logger: quietLogger() });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('synthesizes many distinct valid requests from the model folder by default, so the cache does not answer them', async () => {
    const { report, log } = await bench('--url', server.url, '--model', fraud, '--concurrency', '2');
    expect(report.target.data).toContain('synthesized');
    // Twice the example's cache.max_entries (10000): cycling through them never hits an LRU cache of that size.
    expect(report.target.requests).toBe(20_000);
    const step = report.steps[0]!;
    expect(step.errors.total).toBe(0);
    expect(step.throughput).toBeGreaterThan(0);
    expect(step.serverStats!.cacheHits).toBeLessThan(0.5 * step.serverStats!.requests);
    expect(report.warnings).toEqual([]);
    expect(log).not.toContain('warning:');
  });

  it('warns, in the report and on the console, when the response cache answered most requests', async () => {
    const { report, log } = await bench('--url', server.url, '--model', fraud, '--concurrency', '2', '--sample');
    expect(report.target.data).toContain('sample-request.json');
    expect(report.warnings.join('\n')).toMatch(/response cache answered \d+ of \d+ requests/);
    expect(log).toMatch(/warning: .*response cache answered/);
  });

  it('benchmarks a model known only by name: the request schema comes from the running server', async () => {
    // Its own seed: the server's response cache still holds what the other tests sent with the default one.
    const predict = await bench('--url', server.url, '--model', 'fraud_detector', '--concurrency', '1', '--seed', '3');
    expect(predict.report.target.data).toContain('/openapi.json');
    expect(predict.report.steps[0]!.errors.total).toBe(0);
    expect(predict.report.warnings).toEqual([]);
    const v2 = await bench(
      '--url',
      server.url,
      '--model',
      'fraud_detector',
      '--protocol',
      'v2',
      '--concurrency',
      '1',
      '--seed',
      '3',
    );
    expect(v2.report.target.data).toContain('/v2/models/fraud_detector');
    expect(v2.report.steps[0]!.errors.total).toBe(0);
  });

  it('keeps synthesized values inside the schema: enums, bounds, integers, array lengths, required fields', () => {
    const { documents } = synthesizeRequests(
      {
        properties: {
          amount: { type: 'number', minimum: 5, maximum: 6 },
          count: { type: 'integer', minimum: -3, maximum: 3 },
          kind: { type: 'string', enum: ['a', 'b'] },
          flag: { type: 'boolean' },
          tokens: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: 2, maxItems: 4 },
          note: { type: 'string' },
        },
        required: ['amount', 'count', 'kind', 'flag', 'tokens'],
      },
      'test',
      { count: 200, seed: 7 },
    );
    const rows = documents as Record<string, unknown>[];
    for (const row of rows) {
      expect(row.amount as number).toBeGreaterThanOrEqual(5);
      expect(row.amount as number).toBeLessThanOrEqual(6);
      expect(Number.isInteger(row.count)).toBe(true);
      expect(Math.abs(row.count as number)).toBeLessThanOrEqual(3);
      expect(['a', 'b']).toContain(row.kind);
      expect(typeof row.flag).toBe('boolean');
      const tokens = row.tokens as number[];
      expect(tokens.length).toBeGreaterThanOrEqual(2);
      expect(tokens.length).toBeLessThanOrEqual(4);
      expect(tokens.every((t) => Number.isInteger(t) && t >= 0 && t <= 9)).toBe(true);
    }
    const withNote = rows.filter((r) => 'note' in r).length;
    expect(withNote).toBeGreaterThan(50);
    expect(withNote).toBeLessThan(150);
    expect(new Set(rows.map((r) => JSON.stringify(r))).size).toBeGreaterThan(190);
    expect(synthesizeRequests({ properties: { x: { type: 'number' } } }, 't', { count: 5, seed: 7 }).documents).toEqual(
      synthesizeRequests({ properties: { x: { type: 'number' } } }, 't', { count: 5, seed: 7 }).documents,
    );
  });
});
