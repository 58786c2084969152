import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError, invalidInput } from '../errors.ts';
import type { FeaturesSpec } from '../features/feature-config.ts';
import { FeatureStoreError, type FeatureStore, type FeatureVector } from '../features/feature-store.ts';
import { openFeatureStore } from '../features/feature-stores.ts';
import { FeatureStats } from '../features/feature-stats.ts';
import type { Prediction } from './postprocess.ts';
import type { RequestRow } from './request-schema.ts';

/**
 * The features stage: builds each row's entity key from its request fields, looks the whole batch up
 * in the store at once and joins the values to the rows (as fields preprocess columns can name).
 * Unknown entities get the defaults (or a 404 with on_missing: error); a slow or failing store never
 * fails the request: every keyed row gets the defaults and is reported degraded.
 */
export class FeatureLookup {
  constructor(
    readonly spec: FeaturesSpec,
    readonly store: FeatureStore,
    readonly stats: FeatureStats,
  ) {}

  /** Opens the store of a version's model.yaml `features` section (undefined when it has none). */
  static async open(config: ModelConfig, version: number): Promise<FeatureLookup | undefined> {
    if (!config.features) return undefined;
    const store = await openFeatureStore(config.features, config.dir, config.file);
    return new FeatureLookup(config.features, store, new FeatureStats(config.name, version));
  }

  /** Adds the feature fields to `rows` in place; returns which rows were answered degraded (undefined when none). */
  async run(rows: RequestRow[], prefixOf: (i: number) => string): Promise<boolean[] | undefined> {
    const { spec } = this;
    const keys: string[] = [];
    const keyedRows: number[] = [];
    for (let r = 0; r < rows.length; r++) {
      const key = spec.key.build(rows[r]!);
      if (key !== undefined) {
        keys.push(key);
        keyedRows.push(r);
        continue;
      }
      if (spec.onMissing === 'error') {
        const absent = spec.key.fields.find(
          (f) => rows[r]![f] === undefined || rows[r]![f] === null || rows[r]![f] === '',
        )!;
        throw invalidInput(`${prefixOf(r)}${absent}: required to look up features (key ${spec.key})`);
      }
      this.stats.count('miss');
      this.fill(rows[r]!, null);
    }
    if (keys.length === 0) return undefined;

    let found: (FeatureVector | null)[];
    try {
      found = await this.store.lookup(keys, spec.timeoutMs);
    } catch (error) {
      this.stats.count(error instanceof FeatureStoreError ? error.kind : 'error', keys.length);
      this.stats.degraded += keys.length;
      const degraded = new Array<boolean>(rows.length).fill(false);
      for (const r of keyedRows) {
        this.fill(rows[r]!, null);
        degraded[r] = true;
      }
      return degraded;
    }

    for (let k = 0; k < keys.length; k++) {
      const vector = found[k] ?? null;
      if (vector === null && spec.onMissing === 'error') {
        throw new CaliperError(
          'CALIPER_ENTITY_NOT_FOUND',
          `${prefixOf(keyedRows[k]!)}${spec.key.fields.join(', ')}: no features stored for entity ${keys[k]}`,
        );
      }
      this.stats.count(vector === null ? 'miss' : 'hit');
      this.fill(rows[keyedRows[k]!]!, vector);
    }
    return undefined;
  }

  private fill(row: RequestRow, vector: FeatureVector | null): void {
    const fields = this.spec.fields;
    for (let i = 0; i < fields.length; i++) {
      const field = fields[i]!;
      row[field.name] = vector?.[i] ?? field.default;
    }
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

/** Flags the predictions of rows answered with default features: `features_degraded: true`. */
export function markDegraded(predictions: Prediction[], degraded: readonly boolean[] | undefined): Prediction[] {
  if (!degraded) return predictions;
  return predictions.map((p, r) => (degraded[r] ? { ...p, features_degraded: true } : p));
}
