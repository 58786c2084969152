import { CaliperError } from '../errors.ts';
import type { InstancePool } from '../runtime/instance-pool.ts';
import { BatchStatistics } from './batch-statistics.ts';
import type { InferenceJob, InferenceResult, Scheduler } from './scheduler.ts';

/** No batching: each job runs on the least loaded instance as soon as it arrives. */
export class DirectScheduler implements Scheduler {
  private running = 0;
  private idleWaiters: (() => void)[] = [];
  readonly batches = new BatchStatistics();

  constructor(private readonly pool: InstancePool) {}

  get queueDepth(): number {
    return 0;
  }

  async submit(job: InferenceJob): Promise<InferenceResult> {
    if (job.clientGone?.() === true)
      throw new CaliperError('CALIPER_CANCELLED', 'the client left before its request ran; it was dropped');
    this.running++;
    const started = performance.now();
    try {
      const { outputs, finishedAt } = await this.pool.run(job.inputs, job.outputNames);
      const inferenceMs = (finishedAt ?? performance.now()) - started;
      this.batches.record(job.rows, inferenceMs);
      return { outputs, queueMs: 0, inferenceMs, batchSize: job.rows };
    } finally {
      this.running--;
      if (this.running === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  drain(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
