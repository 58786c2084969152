import type { ModelConfig } from '../config/model-config.ts';
import type { InstancePool } from '../runtime/instance-pool.ts';
import { batchAxisOf, type BatchAxis } from '../runtime/batch-axis.ts';
import type { ModelSignature } from '../runtime/model-signature.ts';
import { padValuesOf } from '../pipeline/preprocess.ts';
import { DirectScheduler } from './direct-scheduler.ts';
import { DynamicBatcher } from './dynamic-batcher.ts';
import type { Scheduler } from './scheduler.ts';

/**
 * The direct scheduler of a version with batching off: the model's queue policy (max_queue_size, priority_levels),
 * one job at a time per in-thread instance, two per worker instance (the next one waits in the worker's hand).
 */
export function directScheduler(
  pool: InstancePool,
  config: Pick<ModelConfig, 'batching' | 'instances' | 'name'>,
): Scheduler {
  const perInstance = config.instances.kind === 'worker' ? 2 : 1;
  return new DirectScheduler(pool, {
    batching: config.batching,
    concurrency: pool.instances.length * perInstance,
    model: config.name,
  });
}

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
  if (!config.batching.enabled || !batchAxis.batchable) return directScheduler(pool, config);
  return new DynamicBatcher(pool, {
    batching: config.batching,
    concurrency: pool.instances.length,
    sla: config.sla,
    model: config.name,
    padding: padValuesOf(config.tensors),
  });
}
