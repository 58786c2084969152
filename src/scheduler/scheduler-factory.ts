import type { ModelConfig } from '../config/model-config.ts';
import type { InstancePool } from '../runtime/instance-pool.ts';
import { hasBatchDimension, type ModelSignature } from '../runtime/model-signature.ts';
import { DirectScheduler } from './direct-scheduler.ts';
import { DynamicBatcher } from './dynamic-batcher.ts';
import type { Scheduler } from './scheduler.ts';

/**
 * The scheduler a version gets by default: the dynamic batcher when model.yaml enables `batching` and the
 * model has a batch dimension to stack requests along; otherwise each request runs as it arrives.
 */
export function defaultScheduler(pool: InstancePool, config: ModelConfig, signature: ModelSignature): Scheduler {
  if (!config.batching.enabled || !hasBatchDimension(signature)) return new DirectScheduler(pool);
  return new DynamicBatcher(pool, { batching: config.batching, concurrency: pool.instances.length, sla: config.sla, model: config.name });
}
