import { CaliperError } from '../errors.ts';
import type { EntityKeyTemplate } from './entity-key.ts';
import type { FeatureFieldSpec } from './feature-config.ts';
import type { FeatureStore, FeatureVector } from './feature-store.ts';
import { featureValueOf, openFeatureTable } from './feature-table.ts';

/** The embedded default: every entity's features held in a Map, loaded from a CSV or Parquet file. */
export class MemoryFeatureStore implements FeatureStore {
  readonly kind = 'memory';

  constructor(private readonly entries: ReadonlyMap<string, FeatureVector>) {}

  get size(): number {
    return this.entries.size;
  }

  /** Reads FILE: the key template's fields and every feature field must be columns of it. */
  static async fromFile(
    path: string,
    key: EntityKeyTemplate,
    fields: readonly FeatureFieldSpec[],
  ): Promise<MemoryFeatureStore> {
    const table = await openFeatureTable(path);
    try {
      const missing = [...key.fields, ...fields.map((f) => f.name)].filter((c) => !table.columns.includes(c));
      if (missing.length > 0) {
        throw new CaliperError(
          'CALIPER_MODEL_LOAD_FAILED',
          `${path}: missing column ${missing.join(', ')} (the file has ${table.columns.join(', ')}; the key ${key} and features need ${[...key.fields, ...fields.map((f) => f.name)].join(', ')})`,
        );
      }
      const entries = new Map<string, FeatureVector>();
      for await (const rows of table.chunks()) {
        for (const row of rows) {
          const entity = key.build(row);
          if (entity !== undefined)
            entries.set(
              entity,
              fields.map((f) => featureValueOf(f, row[f.name])),
            );
        }
      }
      return new MemoryFeatureStore(entries);
    } finally {
      table.close();
    }
  }

  lookup(keys: readonly string[]): Promise<(FeatureVector | null)[]> {
    return Promise.resolve(keys.map((k) => this.entries.get(k) ?? null));
  }

  async close(): Promise<void> {}
}
