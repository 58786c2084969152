/** The feature-lookup counters of one model on a running server, summed over its versions (GET /metrics). */
export interface FeatureCounters {
  lookups: number;
  degraded: number;
}

const LINE = /^(caliper_feature_lookups_total|caliper_features_degraded_total)\{([^}]*)\}\s+([0-9.eE+-]+)$/;

/** Parses Prometheus text for `model`'s feature counters (`caliper_feature_lookups_total`, `caliper_features_degraded_total`). */
export function parseFeatureCounters(text: string, model: string): FeatureCounters {
  const counters: FeatureCounters = { lookups: 0, degraded: 0 };
  for (const line of text.split('\n')) {
    const match = LINE.exec(line.trim());
    if (!match || !match[2]!.split(',').includes(`model="${model}"`)) continue;
    if (match[1] === 'caliper_feature_lookups_total') counters.lookups += Number(match[3]);
    else counters.degraded += Number(match[3]);
  }
  return counters;
}

/** Reads the counters; undefined when the server has no metrics endpoint. */
export async function readFeatureCounters(url: string, model: string): Promise<FeatureCounters | undefined> {
  try {
    const response = await fetch(`${url.replace(/\/$/, '')}/metrics`);
    if (!response.ok) return undefined;
    return parseFeatureCounters(await response.text(), model);
  } catch {
    return undefined;
  }
}

/** Share of lookups between two readings answered with default features (0..1); undefined without lookups. */
export function degradedShare(before: FeatureCounters, after: FeatureCounters): number | undefined {
  const lookups = after.lookups - before.lookups;
  if (lookups <= 0) return undefined;
  return Math.min(1, Math.max(0, (after.degraded - before.degraded) / lookups));
}
