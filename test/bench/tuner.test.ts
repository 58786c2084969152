import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applySettingsToYaml, writeSettings } from '../../src/bench/model-settings.ts';
import { tune } from '../../src/bench/tuner.ts';
import type { SearchSpace, TuneSettings } from '../../src/bench/tune-space.ts';
import { readModelConfig, readVersionConfig } from '../../src/config/model-config-file.ts';

const work = mkdtempSync(join(tmpdir(), 'caliper-tune-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const settings: TuneSettings = { maxBatchSize: 16, maxQueueDelayUs: 100, instanceCount: 2, instanceKind: 'worker', intraOpThreads: 1 };

describe('model.yaml settings', () => {
  it('changes only the tuned keys and keeps comments, other sections and flow style', () => {
    const text = `# a comment that must stay
name: m   # trailing comment
inputs:
  a: { type: number, minimum: 0 }
batching: { max_batch_size: 64, preferred_batch_sizes: [8, 16, 32], max_queue_delay_us: 500 }
instances:
  # block style stays block style
  count: 1
sla: { p99_ms: 50 }
`;
    const out = applySettingsToYaml(text, settings);
    expect(out).toContain('# a comment that must stay\nname: m   # trailing comment\ninputs:\n  a: { type: number, minimum: 0 }\n');
    expect(out).toContain('batching: { max_batch_size: 16, preferred_batch_sizes: [8, 16], max_queue_delay_us: 100, enabled: true }');
    expect(out).toContain('instances:\n  # block style stays block style\n  count: 2\n  kind: worker\n  intra_op_threads: 1\n');
    expect(out).toContain('sla: { p99_ms: 50 }');
  });

  it('turns batching off for a batch size of 1 and adds missing sections', () => {
    const out = applySettingsToYaml('name: m\nbatching: { max_batch_size: 8 }\n', { ...settings, maxBatchSize: 1 });
    expect(out).toContain('batching: { max_batch_size: 8, enabled: false }');
    expect(applySettingsToYaml('name: m\n', settings)).toMatch(/batching:\n {2}enabled: true\n {2}max_batch_size: 16/);
  });
});

describe('caliper tune on the fraud example', () => {
  it('finds a configuration within the p99 budget, and --write stores it', async () => {
    const modelDir = join(work, 'fraud-detector');
    cpSync('examples/fraud-detector', modelDir, { recursive: true });
    const space: SearchSpace = {
      maxBatchSize: [1, 16],
      maxQueueDelayUs: [200],
      instances: [{ count: 1, kind: 'in_thread' }],
      intraOpThreads: [1],
      maxThreads: 2,
    };
    const report = await tune({ modelDir, p99BudgetMs: 1000, search: 'quick', space, concurrency: [1, 4], windowMs: 300, maxTrials: 3 });
    expect(report.kind).toBe('caliper-tune');
    expect(report.spaceSize).toBe(2);
    expect(report.trials.length).toBeLessThanOrEqual(2);
    expect(report.trials.every((t) => t.error === undefined)).toBe(true);
    // The quick search starts from the model's own settings (batch 64 → nearest candidate 16).
    expect(report.trials[0]!.settings.maxBatchSize).toBe(16);
    const winner = report.winner!;
    expect(winner).not.toBeNull();
    expect(winner.best!.p99Ms).toBeLessThanOrEqual(1000);
    expect(winner.best!.throughput).toBeGreaterThan(10);
    expect(winner.steps.length).toBeGreaterThan(0);

    const files = writeSettings(modelDir, winner.settings);
    expect(files).toEqual([join(modelDir, 'model.yaml'), join(modelDir, '2', 'model.yaml')]);
    const written = readVersionConfig(readModelConfig(modelDir), 2);
    expect(written.batching.enabled).toBe(winner.settings.maxBatchSize > 1);
    if (winner.settings.maxBatchSize > 1) expect(written.batching.maxBatchSize).toBe(winner.settings.maxBatchSize);
    expect(written.instances.kind).toBe('in_thread');
    expect(readFileSync(join(modelDir, '2', 'model.yaml'), 'utf8')).toContain('# Fraud detector version 2');
    expect(written.cache.enabled).toBe(true); // only candidates run without the cache
  });

  it('rejects a budget that is not a positive number', async () => {
    await expect(tune({ modelDir: 'examples/fraud-detector', p99BudgetMs: 0, search: 'quick' })).rejects.toThrow(/--p99-ms/);
  });
});
