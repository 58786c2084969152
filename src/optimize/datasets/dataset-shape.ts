/** The shape every data set reader returns (see dataset.ts for the sources), kept apart so readers need not import the loader. */

export interface Dataset {
  /** Where it came from, for messages. */
  source: string;
  features: Float32Array;
  featureShape: number[];
  labels?: Int32Array;
  /** Class names when labels were strings (index i ↔ labelNames[i]). */
  labelNames?: string[];
  count: number;
  /**
   * Set when the source says its samples are images (an IDX image file: [N, H, W] pixels); distillation moves such
   * samples by default (`augmentShift`). Tables, tensors and request rows leave it unset.
   */
  images?: boolean;
}

export type DatasetFormat = 'idx' | 'parquet' | 'csv' | 'pb';

export interface DatasetSpec {
  path: string;
  format?: DatasetFormat;
  /** Label column for Parquet/CSV (default `label` when present). */
  labelColumn?: string;
  /** Feature columns for Parquet/CSV (default: every column but the label). */
  featureColumns?: string[];
  /** Keep only the first `limit` samples. */
  limit?: number;
}
