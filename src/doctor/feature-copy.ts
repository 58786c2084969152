import { Redis } from 'ioredis';
import { resolveModelFolderPath, MODEL_FOLDER_PATHS } from '../config/model-folder-path.ts';
import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import { loadFeatureFile } from '../features/feature-loader.ts';

const SCAN_COUNT = 1000;

/**
 * Copies a model's feature values into the Redis at `targetUrl`, one hash per entity as `caliper features load`
 * writes them: from the feature file of a memory store, or, for a Redis store, every hash whose key matches the
 * key template (SCAN + HGETALL, pipelined). Resolves the number of entities written.
 */
export async function copyFeatures(config: ModelConfig, targetUrl: string): Promise<number> {
  const features = config.features;
  if (!features) return 0;
  const fields = features.fields.map((f) => f.name);
  if (features.store.kind === 'memory') {
    const file = resolveModelFolderPath(
      config.dir,
      features.store.source,
      MODEL_FOLDER_PATHS.featuresSource,
      config.file,
    );
    const summary = await loadFeatureFile({ file, store: targetUrl, key: features.key.template, fields });
    return summary.keysWritten;
  }
  const source = new Redis(features.store.url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000 });
  const target = new Redis(targetUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000 });
  source.on('error', () => {});
  target.on('error', () => {});
  try {
    await Promise.all([source.connect(), target.connect()]);
    const pattern = features.key.template.replace(/\{[^}]+\}/g, '*');
    let cursor = '0';
    let copied = 0;
    do {
      const [next, keys] = await source.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      cursor = next;
      if (keys.length === 0) continue;
      const read = source.pipeline();
      for (const key of keys) read.hmget(key, ...fields);
      const replies = (await read.exec()) ?? [];
      const write = target.pipeline();
      replies.forEach(([error, values], i) => {
        if (error) throw error;
        const entries = fields.flatMap((field, f) => {
          const value = (values as (string | null)[])[f];
          return value === null || value === undefined ? [] : [field, value];
        });
        write.del(keys[i]!);
        if (entries.length > 0) {
          write.hset(keys[i]!, ...entries);
          copied++;
        }
      });
      await write.exec();
    } while (cursor !== '0');
    return copied;
  } catch (error) {
    throw new CaliperError(
      'CALIPER_FEATURE_STORE_UNAVAILABLE',
      `copying features to ${targetUrl}: ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    source.disconnect();
    target.disconnect();
  }
}
