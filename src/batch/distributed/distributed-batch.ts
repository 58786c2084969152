import { CaliperError } from '../../errors.ts';
import { countRows } from '../io/batch-input.ts';
import type { BatchJobSpec } from '../batch-job.ts';
import { BatchQueue, type BatchStatus } from './batch-queue.ts';
import type { BatchProgress, BatchSummary } from '../batch-runner.ts';
import { OutputLayout } from '../io/output-layout.ts';
import { planShards } from './shard-plan.ts';
import { phase, traceMark } from '../phase-timer.ts';

export interface DistributedOptions {
  queue: string;
  /** Tries per shard before it counts as failed. */
  attempts?: number;
  /** Return after queueing the shards; `caliper batch status JOB` follows the job. */
  detach?: boolean;
  overwrite?: boolean;
  /** The longest wait between two reads of the job's status (each finished shard wakes the submitter at once). */
  pollMs?: number;
  /**
   * The queue, opened by the caller while it planned the job (connecting and BullMQ's first commands: 20-25 ms of a
   * fresh process's time); closed here. Otherwise opened here, on `queue`.
   */
  opened?: Promise<BatchQueue>;
}

/**
 * Splits the job into row-range shards, queues them on BullMQ and (unless detached) waits while workers
 * score them, then writes the errors file and merges a single-file output. Output paths must be on storage
 * every worker sees (a shared volume or network filesystem).
 */
export async function runDistributedBatch(
  spec: BatchJobSpec,
  progress: BatchProgress,
  options: DistributedOptions,
): Promise<BatchSummary | BatchStatus> {
  const started = performance.now();
  traceMark('submitter: start');
  const queue = options.opened ? await options.opened : new BatchQueue(options.queue);
  try {
    const layout = new OutputLayout(spec);
    layout.prepare({ overwrite: options.overwrite ?? false, cleanTemporaries: false });
    // The connection the wait below blocks on opens while the inputs are staged and counted.
    if (!options.detach) queue.watchShards();
    // CSV and JSONL are parsed once here, into staged Parquet every worker reads its shards from.
    await phase('stage inputs', () => layout.stageInputs());
    const counts = await phase('count rows', () =>
      Promise.all(spec.inputs.map((_, i) => countRows(layout.scanSource(i)))),
    );
    const totalRows = counts.reduce((a, b) => a + b, 0);
    const shards = planShards(spec.inputs, counts, spec.partRows);
    traceMark(`submitter: planned ${shards.length} shards`);
    const committed = layout.committedParts();
    await phase('submit shards', () => queue.submit(spec, shards, committed, totalRows, options.attempts ?? 3));
    traceMark('submitter: shards queued');
    if (options.detach) return await queue.status(spec.id);
    const doneBefore = committed.reduce((sum, p) => sum + p.inputRows, 0);
    progress.start(totalRows, doneBefore);
    let seen = doneBefore;
    const waiting = phase('wait for shards', async (): Promise<number> => {
      // Each recorded shard (or failed attempt) leaves the job's counters as an event: the end is read from the last
      // one, without another round trip. Without an event for pollMs the counters are read from Redis.
      let counters = await queue.progress(spec.id);
      for (;;) {
        traceMark(`submitter: status ${counters.doneShards}/${counters.shards}`);
        // An event left before the first read may be older than it.
        if (counters.rows > seen) {
          progress.advance(counters.rows - seen, 0);
          seen = counters.rows;
        }
        if (counters.doneShards >= counters.shards) return counters.rows;
        if (counters.failedJobs > 0) {
          const status = await queue.status(spec.id);
          if (status.state === 'failed') {
            const first = status.failedShards[0]!;
            throw new CaliperError(
              'CALIPER_INFERENCE_FAILED',
              `batch job ${spec.id}: ${status.failedShards.length} shard(s) failed after retries; shard ${first.shard}: ${first.reason}`,
            );
          }
        }
        counters = (await queue.nextShardEvent(spec.id, options.pollMs ?? 1000)) ?? (await queue.progress(spec.id));
      }
    });
    let rowsDone: number;
    try {
      rowsDone = await waiting;
    } finally {
      progress.stop();
    }
    const parts = layout.committedParts();
    const { outputRows, errors } = await phase('finalize', () => layout.finalize());
    await queue.setState(spec.id, 'completed');
    const seconds = (performance.now() - started) / 1000;
    traceMark('submitter: summary');
    const rowsThisRun = rowsDone - doneBefore;
    return {
      job: spec.id,
      rows: parts.reduce((sum, p) => sum + p.inputRows, 0),
      outputRows,
      errors,
      rowsThisRun,
      seconds,
      rowsPerSecond: rowsThisRun / seconds,
      output: layout.result,
      errorsFile: spec.errorsFile,
    };
  } finally {
    await queue.close();
  }
}
