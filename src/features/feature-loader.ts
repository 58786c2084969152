import { Redis } from 'ioredis';
import { CaliperError } from '../errors.ts';
import { EntityKeyTemplate } from './entity-key.ts';
import { openFeatureTable } from './feature-table.ts';

export interface FeatureLoadOptions {
  file: string;
  /** redis:// URL. */
  store: string;
  /** Entity key template, e.g. user:{user_id}; its fields must be columns of the file. */
  key: string;
  /** Columns to store (default: every column that is not a key field). */
  fields?: string[];
  /** Seconds each entity hash lives (EXPIRE); none by default. */
  ttlS?: number;
  /** Rows per pipeline (one round trip each). */
  batchSize?: number;
  /**
   * Keep the fields an entity already has and write only the file's non-empty cells over them. By default
   * a load replaces each entity's hash as a whole: a cell emptied in the file removes the stored value.
   */
  merge?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface FeatureLoadSummary {
  file: string;
  store: string;
  key: string;
  fields: string[];
  rows: number;
  keysWritten: number;
  /** Rows without a value in a key field (or, with merge, without any feature value). */
  skippedRows: number;
  /** Entities whose row holds no feature value: their stored hash was removed (not with merge). */
  keysCleared: number;
  /** replace: each entity's hash is rewritten as a whole; merge: the file's cells are written over it. */
  mode: 'replace' | 'merge';
  batches: number;
  seconds: number;
  rowsPerSecond: number;
  ttlS?: number;
}

/**
 * Materializes a CSV or Parquet file into Redis: one hash per entity, written in pipelined batches. Each
 * entity's hash is replaced as a whole (DEL then HSET of its non-empty cells, in one MULTI/EXEC, so a lookup
 * sees the old hash or the new one, never a mix): a cell emptied since the last load no longer answers, and
 * the serving side falls back to the field's default. With `merge`, the non-empty cells are written over
 * whatever the entity already holds (the old behaviour).
 */
export async function loadFeatureFile(options: FeatureLoadOptions): Promise<FeatureLoadSummary> {
  const key = EntityKeyTemplate.parse(options.key, (expected, got) => {
    throw new CaliperError('CALIPER_INVALID_INPUT', `--key: expected ${expected}, got ${JSON.stringify(got)}`);
  });
  if (!/^rediss?:\/\//.test(options.store))
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--store: expected a redis:// URL, got ${JSON.stringify(options.store)}`,
    );
  const batchSize = options.batchSize ?? 1000;
  const started = performance.now();
  const table = await openFeatureTable(options.file);
  const client = new Redis(options.store, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
    connectTimeout: 5000,
  });
  client.on('error', () => {});
  try {
    const missingKeys = key.fields.filter((f) => !table.columns.includes(f));
    if (missingKeys.length > 0)
      throw new CaliperError(
        'CALIPER_INVALID_INPUT',
        `--key: ${options.file} has no column ${missingKeys.join(', ')} (columns: ${table.columns.join(', ')})`,
      );
    const fields = options.fields ?? table.columns.filter((c) => !key.fields.includes(c));
    const missingFields = fields.filter((f) => !table.columns.includes(f));
    if (missingFields.length > 0)
      throw new CaliperError(
        'CALIPER_INVALID_INPUT',
        `--fields: ${options.file} has no column ${missingFields.join(', ')} (columns: ${table.columns.join(', ')})`,
      );
    if (fields.length === 0)
      throw new CaliperError(
        'CALIPER_INVALID_INPUT',
        `${options.file}: no feature columns besides the key fields ${key.fields.join(', ')}`,
      );
    try {
      await client.connect();
    } catch (error) {
      throw new CaliperError(
        'CALIPER_MODEL_NOT_READY',
        `--store: cannot connect to ${options.store}: ${(error as Error).message}`,
      );
    }

    let rows = 0;
    let keysWritten = 0;
    let skippedRows = 0;
    let keysCleared = 0;
    let batches = 0;
    const merge = options.merge === true;
    // A transaction (MULTI … EXEC sent in one round trip): each entity's DEL and HSET apply together.
    const begin = () => (merge ? client.pipeline() : client.multi());
    let pending = begin();
    let pendingRows = 0;
    const flush = async (): Promise<void> => {
      if (pendingRows === 0) return;
      const results = (await pending.exec()) ?? [];
      const failed = results.find(([error]) => error);
      if (failed) throw new CaliperError('CALIPER_INTERNAL', `redis refused a write: ${(failed[0] as Error).message}`);
      batches++;
      pending = begin();
      pendingRows = 0;
    };
    for await (const chunk of table.chunks()) {
      for (const row of chunk) {
        rows++;
        const entity = key.build(row);
        if (entity === undefined) {
          skippedRows++;
          continue;
        }
        const values: string[] = [];
        for (const field of fields) {
          const cell = row[field];
          if (cell === null || cell === undefined || cell === '') continue;
          values.push(field, typeof cell === 'string' ? cell : String(cell));
        }
        if (merge) {
          if (values.length === 0) {
            skippedRows++;
            continue;
          }
          pending.hset(entity, ...values);
          if (options.ttlS !== undefined) pending.expire(entity, options.ttlS);
          keysWritten++;
        } else {
          pending.del(entity);
          if (values.length === 0) {
            keysCleared++;
          } else {
            pending.hset(entity, ...values);
            if (options.ttlS !== undefined) pending.expire(entity, options.ttlS);
            keysWritten++;
          }
        }
        if (++pendingRows >= batchSize) {
          await flush();
          options.onProgress?.(rows, table.rowCount);
        }
      }
    }
    await flush();
    options.onProgress?.(rows, table.rowCount);
    const seconds = (performance.now() - started) / 1000;
    const summary: FeatureLoadSummary = {
      file: options.file,
      store: options.store,
      key: key.template,
      fields,
      rows,
      keysWritten,
      skippedRows,
      keysCleared,
      mode: merge ? 'merge' : 'replace',
      batches,
      seconds: Math.round(seconds * 1000) / 1000,
      rowsPerSecond: Math.round(rows / Math.max(seconds, 1e-9)),
    };
    if (options.ttlS !== undefined) summary.ttlS = options.ttlS;
    return summary;
  } finally {
    table.close();
    client.disconnect();
  }
}
