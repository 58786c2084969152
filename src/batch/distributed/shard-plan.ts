import type { InputFile } from '../io/batch-input.ts';

/** One unit of distributed work: rows [start, end) of one input file; the last shard of a file is open-ended. */
export interface Shard {
  fileIndex: number;
  start: number;
  end: number | null;
}

/**
 * Row-range shards of shardRows each. The last shard of every file has no end, so a row count that is off
 * (a CSV with quoted newlines) can make a shard short but never drops rows.
 */
export function planShards(inputs: readonly InputFile[], rowCounts: readonly number[], shardRows: number): Shard[] {
  const shards: Shard[] = [];
  inputs.forEach((_, fileIndex) => {
    const rows = rowCounts[fileIndex]!;
    for (let start = 0; ; start += shardRows) {
      const last = start + shardRows >= rows;
      shards.push({ fileIndex, start, end: last ? null : start + shardRows });
      if (last) break;
    }
  });
  return shards;
}

export function shardKey(shard: Shard): string {
  return `${shard.fileIndex}-${shard.start}`;
}
