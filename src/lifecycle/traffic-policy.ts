import type { ModelVersion } from './model-version.ts';

/** Requests carrying this header always land on the same side of a canary split. */
export const ROUTING_KEY_HEADER = 'x-caliper-routing-key';

/** How long and how often a shadow version answered, and whether it agreed with the served one. */
export interface ShadowStats {
  mirrored: number;
  agreed: number;
  disagreed: number;
  errors: number;
  /** Requests sampled for mirroring but skipped because too many shadow runs were already in flight. */
  dropped: number;
  primaryMsTotal: number;
  shadowMsTotal: number;
}

export interface CanarySplit {
  version: ModelVersion;
  weight: number;
}

export interface ShadowTarget {
  version: ModelVersion;
  fraction: number;
  stats: ShadowStats;
}

/** A model's traffic split as served: a canary version takes `weight` of requests, a shadow mirrors `fraction`. */
export interface TrafficPolicy {
  canary?: CanarySplit;
  shadow?: ShadowTarget;
}

export const emptyShadowStats = (): ShadowStats => ({
  mirrored: 0,
  agreed: 0,
  disagreed: 0,
  errors: 0,
  dropped: 0,
  primaryMsTotal: 0,
  shadowMsTotal: 0,
});

/** FNV-1a, 32 bits: a stable, well-spread position in [0, 1) for a routing key. */
export function routingPosition(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  // FNV-1a alone leaves keys that differ in their last characters (user-1, user-2, …) close together, so a 10% canary
  // took 17–38% of sequential ids; MurmurHash3's finalizer spreads every input bit over the whole word.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) / 0x1_0000_0000;
}

/** The canary answers when the request's position (from its routing key, or random without one) falls under the weight. */
export function choosesCanary(
  split: Pick<CanarySplit, 'weight'>,
  routingKey: string | undefined,
  random: () => number = Math.random,
): boolean {
  if (split.weight <= 0) return false;
  if (split.weight >= 1) return true;
  const position = routingKey === undefined || routingKey === '' ? random() : routingPosition(routingKey);
  return position < split.weight;
}

const SHADOW_MAX_INFLIGHT = 8;
let shadowInflight = 0;

/** Numbers agree when within 1e-4 absolute or 1e-3 relative; everything else must be equal. */
export function predictionsAgree(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') {
    const diff = Math.abs(a - b);
    return diff <= 1e-4 || diff <= 1e-3 * Math.max(Math.abs(a), Math.abs(b));
  }
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => predictionsAgree(x, b[i]));
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const keysA = Object.keys(a).filter((k) => k !== 'latency_ms');
    const keysB = Object.keys(b).filter((k) => k !== 'latency_ms');
    return (
      keysA.length === keysB.length &&
      keysA.every((k) => predictionsAgree((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
    );
  }
  return a === b;
}

/**
 * Mirrors one request to the shadow version after the caller's answer has gone out: runs on a later
 * turn of the event loop, never throws, and is skipped when SHADOW_MAX_INFLIGHT mirrors are already
 * running, so a slow shadow cannot build a queue behind the served version.
 */
export function mirrorToShadow<T>(
  shadow: ShadowTarget,
  primary: { result: T; ms: number },
  run: (version: ModelVersion) => Promise<T>,
  random: () => number = Math.random,
): void {
  if (shadow.fraction <= 0 || random() >= shadow.fraction) return;
  const stats = shadow.stats;
  if (shadowInflight >= SHADOW_MAX_INFLIGHT || shadow.version.state !== 'ready') {
    stats.dropped++;
    return;
  }
  shadowInflight++;
  setImmediate(() => {
    const started = performance.now();
    run(shadow.version)
      .then(
        (result) => {
          stats.mirrored++;
          stats.primaryMsTotal += primary.ms;
          stats.shadowMsTotal += performance.now() - started;
          if (predictionsAgree(primary.result, result)) stats.agreed++;
          else stats.disagreed++;
        },
        () => {
          stats.mirrored++;
          stats.errors++;
        },
      )
      .finally(() => {
        shadowInflight--;
      });
  });
}

/** The request's routing key (x-caliper-routing-key), when it sends one. */
export function routingKeyOf(request: { headers: Record<string, string | string[] | undefined> }): string | undefined {
  const value = request.headers[ROUTING_KEY_HEADER];
  return typeof value === 'string' && value !== '' ? value : undefined;
}
