import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { mergeMetrics, mergeModelStats, mergeSlaStatus } from '../../src/cluster/cluster-statistics.ts';
import type { SlaStatus } from '../../src/observability/sla-monitor.ts';

const filled = (n: number, ms: number): Float64Array => new Float64Array(n).fill(ms);

function versionStats(success: number, batches: { batch_size: number; count: number }[]): Record<string, unknown> {
  return {
    name: 'fraud',
    version: '1',
    last_inference: success,
    inference_count: success,
    execution_count: batches.reduce((n, b) => n + b.count, 0),
    inference_stats: { success: { count: success, ns: success * 1000 }, fail: { count: 1, ns: 5 } },
    batch_stats: batches.map((b) => ({
      batch_size: b.batch_size,
      compute_input: { count: 0, ns: 0 },
      compute_infer: { count: b.count, ns: b.count * 10 },
      compute_output: { count: 0, ns: 0 },
    })),
    stages: { total: { count: success, ns: success * 1000 } },
    latency_us: { total: { count: success, p50: 0, p90: 0, p99: 0 } },
    queue_depth: 2,
    batchable: true,
  };
}

const slaStatus = (samples: number, breached: boolean, breaches: number): SlaStatus => ({
  model: 'fraud',
  window_s: 10,
  samples,
  p50_ms: 0,
  p95_ms: 0,
  p99_ms: 0,
  budget_p99_ms: 50,
  met: true,
  consecutive_breaches: breached ? 3 : 0,
  breached,
  breaches_total: breaches,
});

describe('merging what the workers observed', () => {
  it('sums counts and batch statistics and takes percentiles over every sample, not the mean of the workers’', () => {
    // Worker 1: 90 fast requests (1 ms); worker 2: 10 slow ones (100 ms). Averaging the workers' p50 would give 50.5 ms.
    const merged = mergeModelStats([
      {
        model_stats: [versionStats(90, [{ batch_size: 1, count: 90 }])],
        samples: [{ name: 'fraud', version: '1', total: filled(90, 1), overhead: filled(90, 0.5) }],
      },
      {
        model_stats: [
          versionStats(10, [
            { batch_size: 1, count: 4 },
            { batch_size: 8, count: 1 },
          ]),
        ],
        samples: [{ name: 'fraud', version: '1', total: filled(10, 100), overhead: filled(10, 0.5) }],
      },
    ]);
    const [v] = merged.model_stats as Record<string, never>[];
    expect(v!.inference_count).toBe(100);
    expect(v!.execution_count).toBe(95);
    expect(v!.queue_depth).toBe(4);
    expect(v!.last_inference).toBe(90);
    expect(v!.inference_stats).toEqual({ success: { count: 100, ns: 100_000 }, fail: { count: 2, ns: 10 } });
    expect(v!.stages).toEqual({ total: { count: 100, ns: 100_000 } });
    expect(v!.batch_stats).toEqual([
      {
        batch_size: 1,
        compute_input: { count: 0, ns: 0 },
        compute_infer: { count: 94, ns: 940 },
        compute_output: { count: 0, ns: 0 },
      },
      {
        batch_size: 8,
        compute_input: { count: 0, ns: 0 },
        compute_infer: { count: 1, ns: 10 },
        compute_output: { count: 0, ns: 0 },
      },
    ]);
    expect(v!.latency_us).toEqual({
      total: { count: 100, p50: 1000, p90: 1000, p99: 100_000 },
      overhead: { count: 100, p50: 500, p90: 500, p99: 500 },
    });
  });

  it('keeps a version only one worker serves (mid-swap) as that worker reports it', () => {
    const merged = mergeModelStats([
      { model_stats: [versionStats(3, [])], samples: [] },
      { model_stats: [{ ...versionStats(2, []), version: '2' }], samples: [] },
    ]);
    expect(merged.model_stats.map((s) => [s.version, s.inference_count])).toEqual([
      ['1', 3],
      ['2', 2],
    ]);
  });

  it('computes the SLA percentiles over both windows together and sums samples and breaches', () => {
    const merged = mergeSlaStatus([
      { status: slaStatus(90, false, 0), samples: filled(90, 1) },
      { status: slaStatus(10, true, 2), samples: filled(10, 100) },
    ]);
    expect(merged).toMatchObject({
      samples: 100,
      p50_ms: 1,
      p99_ms: 100,
      met: false,
      breached: true,
      consecutive_breaches: 3,
      breaches_total: 2,
    });
  });

  it('sums Prometheus series per label set and recomputes the SLA p99 gauge from the merged samples', async () => {
    const part = async (count: number, p99: number, samples: Float64Array) => {
      const registry = new Registry();
      new Counter({ name: 'caliper_requests_total', help: 'h', labelNames: ['model'], registers: [registry] }).inc(
        { model: 'fraud' },
        count,
      );
      new Gauge({ name: 'caliper_sla_p99_seconds', help: 'p99', labelNames: ['model'], registers: [registry] }).set(
        { model: 'fraud' },
        p99,
      );
      return { metrics: await registry.getMetricsAsJSON(), sla: [{ model: 'fraud', samples }] };
    };
    const merged = await mergeMetrics([await part(90, 0.001, filled(90, 1)), await part(10, 0.1, filled(10, 100))]);
    expect(merged.text).toContain('caliper_requests_total{model="fraud"} 100');
    // Not 0.101 (summed) nor 0.0505 (averaged): the p99 of the 100 requests.
    expect(merged.text).toContain('caliper_sla_p99_seconds{model="fraud"} 0.1');
    expect(merged.text).not.toContain('0.101');
  });
});
