import type { BatchFormat } from './batch-format.ts';

/** One input file of a batch job, as found by expanding the --input pattern. */
export interface InputFile {
  path: string;
  format: BatchFormat;
  /** Under a Hive-partitioned folder (date=2026-11-30/…): the key=value folders are read as columns. */
  hive?: boolean;
}
