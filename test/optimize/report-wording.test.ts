import { describe, expect, it } from 'vitest';
import { formatDistillReport, type DistillReport } from '../../src/optimize/distill/distill-report.ts';
import { judgeOptimization } from '../../src/optimize/evaluate/optimization-guard.ts';
import { formatQuantizeReport, type QuantizeReport } from '../../src/optimize/evaluate/quantize-report.ts';

const latency = [{ batchSize: 64, beforeMs: 1, afterMs: 1.19, speedup: 1 / 1.19 }];

describe('reports read in the direction the numbers go', () => {
  it('quantize: a larger, slower model is called larger and slower, and the guard says it was not written', () => {
    const size = { beforeBytes: 1000, afterBytes: 1352, ratio: 1.352 };
    const verdict = judgeOptimization({ size, latency });
    const report: QuantizeReport = {
      mode: 'dynamic',
      settings: {},
      size,
      convertedNodes: 2,
      floatOps: {},
      warnings: [],
      outputDifference: { samples: 8, maxAbs: 0.01, meanAbs: 0.001, source: 'synthetic' },
      latency,
      guard: { ...verdict, forced: false, written: false },
      opset: 17,
      irVersion: 8,
    };
    const text = formatQuantizeReport(report);
    expect(text).toContain('(1.35× larger)');
    expect(text).toContain('(1.19× slower, 1 intra-op thread)');
    expect(text).not.toMatch(/0\.\d+× faster/);
    expect(text).toContain(
      'guard           FAILED: larger: 1352 bytes against 1000 (1.35× the size); slower at batch 64: 1.000 ms → 1.190 ms (1.19× slower)',
    );
    expect(text).toContain('not checked: accuracy (no evaluation data with labels');
    expect(text).toContain('not written (pass --force to write it anyway)');
  });

  it('distill: a student above a weak teacher, bigger than it, after one epoch', () => {
    const epoch = { epoch: 1, loss: 0.5, seconds: 1 };
    const report: DistillReport = {
      student: 'mlp:64',
      settings: {
        temperature: 1,
        alpha: 0.5,
        epochs: 1,
        batchSize: 128,
        learningRate: 1e-3,
        patience: 3,
        qat: false,
        seed: 1,
      },
      data: { train: 't', trainSamples: 10, evaluatedOn: 'e', evalSamples: 10, classes: 10, earlyStopping: 'none' },
      teacherLogitsSeconds: 0.1,
      teacher: { accuracy: 0.05, agreement: 1, parameters: 1000, sizeBytes: 4000 },
      distilled: {
        accuracy: 0.57,
        agreement: 0.1,
        parameters: 1600,
        sizeBytes: 6400,
        epochs: [epoch],
        bestEpoch: 1,
        stoppedEarly: false,
        trainSeconds: 1,
        exportMaxAbsDiff: 1e-6,
      },
      accuracyRatio: 0.57 / 0.05,
      latency,
      totalSeconds: 2,
      warnings: [],
    };
    const text = formatDistillReport(report);
    expect(text).toContain(
      'student is 52.00 pt more accurate than the teacher (57.00% against 5.00%) with 1.6× more parameters',
    );
    expect(text).not.toMatch(/1140\.0%|fewer parameters/);
    expect(text).toContain('(student 1.19× slower, 1 intra-op thread, same run)');
    expect(text).toMatch(/training: 1 epoch in/);
  });
});
