import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applySettingsToYaml, writeSettings } from '../../src/bench/model-settings.ts';
import { chooseWinner, tune, type TuneTrial } from '../../src/bench/tuner.ts';
import type { SearchSpace, TuneSettings } from '../../src/bench/tune-space.ts';
import { readModelConfig, readVersionConfig } from '../../src/config/model-config-file.ts';

const work = mkdtempSync(join(tmpdir(), 'caliper-tune-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const settings: TuneSettings = {
  maxBatchSize: 16,
  maxQueueDelayUs: 100,
  instanceCount: 2,
  instanceKind: 'worker',
  intraOpThreads: 1,
};

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
    expect(out).toContain(
      '# a comment that must stay\nname: m   # trailing comment\ninputs:\n  a: { type: number, minimum: 0 }\n',
    );
    expect(out).toContain(
      'batching: { max_batch_size: 16, preferred_batch_sizes: [8, 16], max_queue_delay_us: 100, enabled: true }',
    );
    expect(out).toContain(
      'instances:\n  # block style stays block style\n  count: 2\n  kind: worker\n  intra_op_threads: 1\n',
    );
    expect(out).toContain('sla: { p99_ms: 50 }');
  });

  it('with the current settings given, writes only the settings that change', () => {
    const text =
      'name: m\ninstances: { count: 1, kind: in_thread, intra_op_threads: 1 }\nbatching: { max_batch_size: 64, preferred_batch_sizes: [4, 8, 16, 32], max_queue_delay_us: 1000 }\n';
    const current: TuneSettings = {
      maxBatchSize: 64,
      maxQueueDelayUs: 1000,
      instanceCount: 1,
      instanceKind: 'in_thread',
      intraOpThreads: 1,
    };
    const out = applySettingsToYaml(text, { ...current, maxQueueDelayUs: 200 }, { current });
    expect(out).toBe(
      'name: m\ninstances: { count: 1, kind: in_thread, intra_op_threads: 1 }\nbatching: { max_batch_size: 64, preferred_batch_sizes: [4, 8, 16, 32], max_queue_delay_us: 200 }\n',
    );
    expect(applySettingsToYaml(text, current, { current })).toBe(text);
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
      maxQueueDelayUs: [500],
      instances: [{ count: 1, kind: 'in_thread' }],
      intraOpThreads: [1],
      maxThreads: 2,
    };
    const report = await tune({
      modelDir,
      p99BudgetMs: 1000,
      search: 'quick',
      space,
      concurrency: [1, 4],
      windowMs: 300,
      maxTrials: 3,
    });
    expect(report.kind).toBe('caliper-tune');
    // The model's own settings (batch 64) join the space exactly as written: batch 1, 16 and 64.
    expect(report.spaceSize).toBe(3);
    expect(report.trials.length).toBeLessThanOrEqual(3);
    expect(report.trials.every((t) => t.error === undefined)).toBe(true);
    // The first measurement is the current settings exactly, and the speed-up compares against it.
    expect(report.current).toEqual({
      maxBatchSize: 64,
      maxQueueDelayUs: 500,
      instanceCount: 1,
      instanceKind: 'in_thread',
      intraOpThreads: 1,
    });
    expect(report.trials[0]!.settings).toEqual(report.current);
    expect(report.speedupOverCurrent).toBeCloseTo(
      report.winner!.best!.throughput / report.trials[0]!.best!.throughput,
      2,
    );
    // The winner is the best measured candidate (within the documented noise tie).
    const top = Math.max(...report.trials.map((t) => t.best?.throughput ?? 0));
    expect(report.winner!.best!.throughput).toBeGreaterThanOrEqual(top * 0.98);
    expect(report.winnerRule).toMatch(/highest throughput/);
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
  }, 240_000); // three candidate servers started and measured: about 20 s idle, a minute on a loaded machine

  it('chooses the highest throughput within the budget; ties within 2% go to the lower p99, then the current settings', () => {
    const trial = (maxBatchSize: number, throughput: number | null, p99Ms = 4): TuneTrial => ({
      settings: { ...settings, maxBatchSize },
      description: `b${maxBatchSize}`,
      steps: [],
      best: throughput === null ? null : { concurrency: 8, throughput, p99Ms, p50Ms: 1 },
    });
    const current = trial(64, 1000, 3);
    expect(chooseWinner([current, trial(8, 1200), trial(16, 1500), trial(32, null)], current)!.description).toBe('b16');
    expect(chooseWinner([current, trial(8, 1500, 5), trial(16, 1490, 2)], current)!.description).toBe('b16');
    expect(chooseWinner([trial(8, 1000, 3), current], current)).toBe(current);
    expect(chooseWinner([trial(8, null), trial(16, null)], undefined)).toBeNull();
  });

  it('rejects a budget that is not a positive number', async () => {
    await expect(tune({ modelDir: 'examples/fraud-detector', p99BudgetMs: 0, search: 'quick' })).rejects.toThrow(
      /--p99-ms/,
    );
  });
});
