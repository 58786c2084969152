import type { ModelConfig } from '../config/model-config.ts';
import type { InstancePool } from '../runtime/instance-pool.ts';
import { batchAxisOf, type BatchAxis } from '../runtime/batch-axis.ts';
import type { ModelSignature } from '../runtime/model-signature.ts';
import { padValuesOf } from '../pipeline/preprocess.ts';
import { DirectScheduler } from './direct-scheduler.ts';
import { DynamicBatcher } from './dynamic-batcher.ts';
import type { Scheduler } from './scheduler.ts';

/**
 * The scheduler a version gets by default: the dynamic batcher when model.yaml enables `batching` and the
 * model's outputs provably have the batch as their first axis; otherwise each request runs as it arrives, alone.
 */
export function defaultScheduler(
  pool: InstancePool,
  config: ModelConfig,
  signature: ModelSignature,
  batchAxis: BatchAxis = batchAxisOf(signature),
): Scheduler {
  if (!config.batching.enabled || !batchAxis.batchable) return new DirectScheduler(pool);
  return new DynamicBatcher(pool, {
    batching: config.batching,
    concurrency: pool.instances.length,
    sla: config.sla,
    model: config.name,
    padding: padValuesOf(config.tensors),
  });
}
