/**
 * Data sets for calibration, evaluation and distillation, as one typed shape:
 *
 *   const data = await loadDataset('fashion-mnist:t10k');          // Debian's Fashion-MNIST, test split
 *   const data = await loadDataset({ path: 'train.parquet', labelColumn: 'label' });
 *   data.features      Float32Array, count × product(featureShape), row-major
 *   data.featureShape  one sample's shape, e.g. [784] or [1, 28, 28]
 *   data.labels        Int32Array of class indices when the source has labels
 *
 * Sources (`DatasetSpec.path`, format guessed from the name unless `format` says):
 *   - `fashion-mnist:train|t10k`, an IDX images file (labels file found next to it) or a directory
 *     holding `*-images-idx3-ubyte[.gz]` + `*-labels-idx1-ubyte[.gz]`: pixels scaled to [0, 1];
 *   - `.parquet` / `.csv`: numeric feature columns (all but the label column unless `featureColumns`
 *     names them; a list column is flattened) and an optional label column (default `label`);
 *   - `.pb`: one ONNX TensorProto whose first dimension is the sample axis, or a directory of `input_*.pb`
 *     files (an ONNX test_data_set), concatenated along the first axis.
 */
import { existsSync, statSync } from 'node:fs';
import { DatasetError } from './dataset-error.ts';
import type { Dataset, DatasetFormat, DatasetSpec } from './dataset-shape.ts';
import { readIdxDataset } from './idx-reader.ts';
import { readTabularDataset } from './tabular-reader.ts';
import { readTensorDataset } from './tensor-file-reader.ts';

export type { Dataset, DatasetFormat, DatasetSpec };

export { DatasetError };

function guessFormat(path: string): DatasetFormat {
  const lower = path.toLowerCase();
  if (lower.startsWith('fashion-mnist:') || /idx\d-ubyte(\.gz)?$/.test(lower)) return 'idx';
  if (lower.endsWith('.parquet')) return 'parquet';
  if (lower.endsWith('.csv') || lower.endsWith('.csv.gz')) return 'csv';
  if (lower.endsWith('.pb')) return 'pb';
  if (existsSync(path) && statSync(path).isDirectory()) return /test_data_set/.test(path) ? 'pb' : 'idx';
  throw new DatasetError(
    `cannot tell the format of data set ${path}: expected fashion-mnist:SPLIT, an IDX file or directory, .parquet, .csv or .pb`,
  );
}

export async function loadDataset(spec: DatasetSpec | string): Promise<Dataset> {
  const resolved = typeof spec === 'string' ? { path: spec } : spec;
  const format = resolved.format ?? guessFormat(resolved.path);
  if (!resolved.path.startsWith('fashion-mnist:') && !existsSync(resolved.path)) {
    throw new DatasetError(`data set ${resolved.path} does not exist`);
  }
  let dataset: Dataset;
  switch (format) {
    case 'idx':
      dataset = readIdxDataset(resolved.path);
      break;
    case 'parquet':
    case 'csv':
      dataset = await readTabularDataset(resolved.path, format, resolved);
      break;
    case 'pb':
      dataset = readTensorDataset(resolved.path);
      break;
  }
  if (dataset.count === 0) throw new DatasetError(`data set ${resolved.path} holds no samples`);
  return resolved.limit !== undefined && resolved.limit < dataset.count
    ? sliceDataset(dataset, 0, resolved.limit)
    : dataset;
}

export function sampleSize(dataset: Pick<Dataset, 'featureShape'>): number {
  return dataset.featureShape.reduce((a, b) => a * b, 1);
}

/** Samples [start, start + count) as a new data set sharing no memory with the original. */
export function sliceDataset(dataset: Dataset, start: number, count: number): Dataset {
  const end = Math.min(dataset.count, start + count);
  const size = sampleSize(dataset);
  return {
    ...dataset,
    features: dataset.features.slice(start * size, end * size),
    ...(dataset.labels ? { labels: dataset.labels.slice(start, end) } : {}),
    count: end - start,
  };
}
