import { describe, expect, it } from 'vitest';
import { checkRoundTrip, listConformanceCases, type ConformanceResult } from '../../src/optimize/onnx/conformance.ts';

// The whole libonnx-testdata node/simple/pytorch-* set runs in a few seconds, so CI checks every case;
// scripts/onnx-conformance.ts prints the same run case by case.
const SUITES = { node: 800, simple: 15, 'pytorch-converted': 50, 'pytorch-operator': 20 } as const;

describe('ONNX model IO conformance (libonnx-testdata)', () => {
  for (const [suite, minimumRunnable] of Object.entries(SUITES)) {
    it(`round-trips ${suite} with identical ONNX Runtime outputs`, async () => {
      const results: ConformanceResult[] = [];
      for (const dir of listConformanceCases(suite)) results.push(await checkRoundTrip(dir));
      const mismatches = results.filter((r) => r.status === 'mismatch').map((r) => `${r.caseDir}: ${r.detail}`);
      const structural = results.filter((r) => !r.structurallyIdentical).map((r) => r.caseDir);
      expect(mismatches).toEqual([]);
      expect(structural).toEqual([]);
      expect(results.filter((r) => r.status === 'identical').length).toBeGreaterThanOrEqual(minimumRunnable);
    });
  }
});
