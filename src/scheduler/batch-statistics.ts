/** Counts per executed batch size, as Triton's statistics extension reports them (batch_stats). */
export interface BatchSizeStats {
  batchSize: number;
  /** Batches of this size that ran. */
  count: number;
  /** Cumulative wall time of those batches' runs, milliseconds. */
  computeMs: number;
}

export class BatchStatistics {
  private readonly bySize = new Map<number, BatchSizeStats>();
  /** Batches executed, any size. */
  executions = 0;
  /** Rows executed, any batch. */
  rows = 0;

  record(batchSize: number, computeMs: number): void {
    let entry = this.bySize.get(batchSize);
    if (!entry) {
      entry = { batchSize, count: 0, computeMs: 0 };
      this.bySize.set(batchSize, entry);
    }
    entry.count++;
    entry.computeMs += computeMs;
    this.executions++;
    this.rows += batchSize;
  }

  /** Entries sorted by batch size. */
  sizes(): BatchSizeStats[] {
    return [...this.bySize.values()].sort((a, b) => a.batchSize - b.batchSize);
  }
}
