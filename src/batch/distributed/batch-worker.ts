import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { CaliperError } from '../../errors.ts';
import type { ModelVersion } from '../../lifecycle/model-version.ts';
import { openRowSource } from '../io/batch-input.ts';
import type { BatchJobSpec } from '../batch-job.ts';
import { loadBatchModel } from '../batch-model.ts';
import { BATCH_QUEUE, BatchQueue, redisConnection, type ShardJobData } from './batch-queue.ts';
import { producePart, scorerFor } from '../batch-runner.ts';
import { columnarPlanFor, produceColumnarPart } from '../columnar/columnar-part.ts';
import type { ColumnarPlan } from '../columnar/columnar-plan.ts';
import { scoreRangeToPart } from '../columnar/scoring-copy.ts';
import { OutputLayout, type PartMeta } from '../io/output-layout.ts';
import { shardKey, type Shard } from './shard-plan.ts';
import { traceMark } from '../phase-timer.ts';

/** Which scorer scored a shard (columnar unless the model or file needs the row path), and on which path. */
export interface ShardScoring {
  scorer: 'columnar' | 'row';
  /** `one-pass`: read, scored and written by one DuckDB COPY (scoring-copy.ts); `parts`: the columnar or row part writer. */
  path: 'one-pass' | 'parts';
}

/** How runShard gets the columnar plan of an input file (columnarPlanFor, or a worker's cache of its answers). */
export type PlanFor = (
  version: ModelVersion,
  spec: BatchJobSpec,
  layout: OutputLayout,
  fileIndex: number,
) => Promise<ColumnarPlan | undefined>;

/** Plans a worker keeps per loaded model: enough for the files of the jobs it is likely to interleave. */
const PLANS_KEPT = 64;

/**
 * Scores one shard into one part file, committed with a single rename: a retry rewrites the same part, never a second one.
 * The same columnar scorer as a local run, over the same scan source (the coordinator staged CSV and JSONL inputs):
 * one DuckDB COPY where the local one-pass path would take it (a clean range, an in-thread model), else the parts path.
 */
export async function runShard(
  version: ModelVersion,
  spec: BatchJobSpec,
  shard: Shard,
  onRows: (rows: number) => void = () => undefined,
  planFor: PlanFor = columnarPlanFor,
): Promise<PartMeta & ShardScoring> {
  const layout = new OutputLayout(spec);
  const file = spec.inputs[shard.fileIndex]!;
  const plan = await planFor(version, spec, layout, shard.fileIndex);
  traceMark(`worker: plan ready ${shardKey(shard)}`);
  if (plan) {
    const end = shard.end ?? Infinity;
    const onePass = await scoreRangeToPart(version, plan, layout, shard.fileIndex, shard.start, end, onRows);
    if (onePass) return { ...onePass, scorer: 'columnar', path: 'one-pass' };
    const part = await produceColumnarPart(
      version,
      plan,
      spec,
      layout,
      shard.fileIndex,
      shard.start,
      end,
      Number.isFinite(end) ? end - shard.start : spec.partRows,
      (rows) => onRows(rows),
    );
    await part.commit();
    return { ...part.meta, scorer: 'columnar', path: 'parts' };
  }
  const source = await openRowSource(layout.scanSource(shard.fileIndex), {
    start: shard.start,
    end: shard.end ?? Infinity,
  });
  try {
    const scorer = scorerFor(version, spec, source, file.path);
    const part = await producePart(
      source,
      scorer,
      spec,
      layout,
      shard.fileIndex,
      shard.start,
      Infinity,
      (rows) => onRows(rows),
      true,
    );
    await part!.commit();
    return { ...part!.meta, scorer: 'row', path: 'parts' };
  } finally {
    await source.close();
  }
}

export interface BatchWorkerOptions {
  queue: string;
  concurrency?: number;
  instances?: number;
  threads?: number;
  registry?: string;
  /** How long a shard's lock lasts without renewal: a killed worker's shard is retried after about this long. */
  lockMs?: number;
  /** `scorer` and `path`: how the shard was scored (ShardScoring). */
  onShard?: (event: {
    job: string;
    shard: Shard;
    meta?: PartMeta;
    scorer?: ShardScoring['scorer'];
    path?: ShardScoring['path'];
    error?: string;
  }) => void;
}

/** `caliper worker`: takes shards from the queue until closed; models are loaded once per process and reused. */
export class BatchWorker {
  private readonly models = new Map<string, Promise<ModelVersion>>();
  private readonly specs = new Map<string, BatchJobSpec>();
  /**
   * Each loaded model's columnar plans by job and input file: the plan is the same for every shard of a file, and
   * planning reads the file's schema through DuckDB (1.5-2 ms a shard, session 11's timeline).
   */
  private readonly plans = new WeakMap<ModelVersion, Map<string, Promise<ColumnarPlan | undefined>>>();
  private readonly planFor: PlanFor = (version, spec, layout, fileIndex) => {
    let byFile = this.plans.get(version);
    if (!byFile) this.plans.set(version, (byFile = new Map()));
    const key = `${spec.id}:${fileIndex}`;
    let plan = byFile.get(key);
    if (!plan) {
      plan = columnarPlanFor(version, spec, layout, fileIndex);
      plan.catch(() => byFile.delete(key));
      byFile.set(key, plan);
      if (byFile.size > PLANS_KEPT) byFile.delete(byFile.keys().next().value!);
    }
    return plan;
  };
  private readonly worker: Worker<ShardJobData>;
  private readonly state: BatchQueue;

  constructor(private readonly options: BatchWorkerOptions) {
    this.state = new BatchQueue(options.queue);
    const lockDuration = options.lockMs ?? 30_000;
    this.worker = new Worker<ShardJobData>(BATCH_QUEUE, (job) => this.process(job), {
      connection: redisConnection(options.queue),
      concurrency: options.concurrency ?? 1,
      lockDuration,
      stalledInterval: Math.max(1000, Math.floor(lockDuration / 2)),
      maxStalledCount: 3,
    });
    this.worker.on('completed', (job) => traceMark(`worker: completed ${shardKey(job.data.shard)}`));
    this.worker.on('failed', (job, error) => {
      if (!job) return;
      // Wakes the job's submitter, which then reads whether the job failed (a retried attempt leaves it running).
      this.state.notify(job.data.job).catch(() => undefined);
      options.onShard?.({ job: job.data.job, shard: job.data.shard, error: error.message });
    });
  }

  /** Resolves once the worker is connected and taking jobs. */
  async ready(): Promise<void> {
    await this.worker.waitUntilReady();
  }

  private model(spec: BatchJobSpec): Promise<ModelVersion> {
    const key = JSON.stringify([
      spec.model,
      this.options.instances ?? spec.instances,
      this.options.threads ?? spec.threads,
    ]);
    let loading = this.models.get(key);
    if (!loading) {
      const instances = this.options.instances ?? spec.instances;
      const threads = this.options.threads ?? spec.threads;
      const registry = this.options.registry ?? spec.registry;
      loading = loadBatchModel(spec.model, {
        ...(instances !== undefined ? { instances } : {}),
        ...(threads !== undefined ? { threads } : {}),
        ...(registry !== undefined ? { registry } : {}),
      });
      loading.catch(() => this.models.delete(key));
      this.models.set(key, loading);
    }
    return loading;
  }

  private async process(job: Job<ShardJobData>): Promise<{ rows: number; outputRows: number; errors: number }> {
    const { job: id, shard } = job.data;
    traceMark(`worker: picked ${shardKey(shard)}`);
    let spec = this.specs.get(id);
    if (!spec) {
      spec = await this.state.spec(id);
      this.specs.set(id, spec);
    }
    try {
      const version = await this.model(spec);
      traceMark(`worker: model ready ${shardKey(shard)}`);
      const { scorer, path, ...meta } = await runShard(version, spec, shard, undefined, this.planFor);
      traceMark(`worker: part committed ${shardKey(shard)}`);
      await this.state.recordShard(id, shard, meta.inputRows, meta.outputRows, meta.errors.length);
      traceMark(`worker: recorded ${shardKey(shard)}`);
      this.options.onShard?.({ job: id, shard, meta, scorer, path });
      return { rows: meta.inputRows, outputRows: meta.outputRows, errors: meta.errors.length };
    } catch (error) {
      // Bad data or a bad model will not get better on retry.
      if (error instanceof CaliperError && error.httpStatus < 500) throw new UnrecoverableError(error.message);
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.worker.close();
    await this.state.close();
    for (const loading of this.models.values())
      await loading.then(
        (v) => v.unload(),
        () => undefined,
      );
  }
}
