import { CaliperError } from '../errors.ts';
import type { FeatureValue } from './feature-config.ts';

/**
 * Where per-entity features live. A store is built for one list of fields and answers, for each
 * entity key, the values in that field order (undefined for a value it does not hold) or null when
 * it does not know the entity at all.
 */
export type FeatureVector = (FeatureValue | undefined)[];

export interface FeatureStore {
  readonly kind: 'memory' | 'redis';
  /** Looks up a whole batch of keys; a remote store answers in one round trip. Rejects with FeatureStoreError. */
  lookup(keys: readonly string[], timeoutMs: number): Promise<(FeatureVector | null)[]>;
  close(): Promise<void>;
}

/** Why a lookup gave no answer: the store was too slow (`timeout`) or failed or is unreachable (`error`). */
export class FeatureStoreError extends CaliperError {
  constructor(
    readonly kind: 'timeout' | 'error',
    message: string,
  ) {
    super(kind === 'timeout' ? 'CALIPER_FEATURE_STORE_TIMEOUT' : 'CALIPER_FEATURE_STORE_UNAVAILABLE', message);
    this.name = 'FeatureStoreError';
  }
}
