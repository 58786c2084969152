import type { ModelConfig } from '../config/model-config.ts';
import type { BatchParts } from './batch-input-buffers.ts';
import type { ModelSignature } from './model-signature.ts';
import { InThreadInstance, WorkerInstance, type ModelInstance, type RunResult } from './model-instance.ts';
import type { SessionSpec } from './onnx-session.ts';
import type { TensorMap } from './tensor.ts';

/** The instances of one model version; each run goes to the least loaded instance. */
export class InstancePool {
  private constructor(
    readonly instances: ModelInstance[],
    /** How each instance's ONNX Runtime session was created: another thread loads the same model from it. */
    readonly sessionSpec: SessionSpec,
  ) {}

  static async load(modelPath: string, config: Pick<ModelConfig, 'instances' | 'optimization'>): Promise<InstancePool> {
    const spec: SessionSpec = {
      modelPath,
      intraOpThreads: config.instances.intraOpThreads,
      interOpThreads: config.instances.interOpThreads,
      graphLevel: config.optimization.graphLevel,
    };
    const loader = (id: number): Promise<ModelInstance> =>
      config.instances.kind === 'in_thread' ? InThreadInstance.load(id, spec) : WorkerInstance.load(id, spec);
    const settled = await Promise.allSettled(Array.from({ length: config.instances.count }, (_, id) => loader(id)));
    const loaded = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(loaded.map((i) => i.release()));
      throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    }
    return new InstancePool(loaded, spec);
  }

  get signature(): ModelSignature {
    return this.instances[0]!.signature;
  }

  get inflight(): number {
    return this.instances.reduce((sum, i) => sum + i.inflight, 0);
  }

  private leastLoaded(): ModelInstance {
    let best = this.instances[0]!;
    for (const instance of this.instances) if (instance.inflight < best.inflight) best = instance;
    return best;
  }

  run(feeds: TensorMap, outputNames?: string[]): Promise<RunResult> {
    return this.leastLoaded().run(feeds, outputNames);
  }

  /** Runs several requests' inputs as one batch on the least loaded instance, which stacks them (ModelInstance.runRows). */
  runRows(parts: BatchParts, outputNames?: string[]): Promise<RunResult> {
    return this.leastLoaded().runRows(parts, outputNames);
  }

  async release(): Promise<void> {
    await Promise.all(this.instances.map((i) => i.release()));
  }
}
