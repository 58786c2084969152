import { DuckDBInstance } from '@duckdb/node-api';
import { DatasetError } from './dataset-error.ts';
import type { Dataset, DatasetSpec } from './dataset-shape.ts';

function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function _quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Parquet or CSV through DuckDB: numeric feature columns (a list column is flattened) and a label column. */
export async function readTabularDataset(path: string, format: 'parquet' | 'csv', spec: DatasetSpec): Promise<Dataset> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const table = format === 'parquet' ? `read_parquet(${sqlString(path)})` : `read_csv_auto(${sqlString(path)})`;
    const reader = await connection.runAndReadAll(`SELECT * FROM ${table}`);
    const names = reader.columnNames();
    const columns = reader.getColumnsJS();
    const labelColumn = spec.labelColumn ?? (names.includes('label') ? 'label' : undefined);
    if (spec.labelColumn && !names.includes(spec.labelColumn)) {
      throw new DatasetError(`${path} has no label column ${spec.labelColumn} (columns: ${names.join(', ')})`);
    }
    const featureNames = spec.featureColumns ?? names.filter((n) => n !== labelColumn);
    for (const name of featureNames) {
      if (!names.includes(name))
        throw new DatasetError(`${path} has no feature column ${name} (columns: ${names.join(', ')})`);
    }
    if (featureNames.length === 0) throw new DatasetError(`${path} has no feature columns`);
    const count = columns[0]?.length ?? 0;
    const featureColumns = featureNames.map((n) => columns[names.indexOf(n)]!);
    const widths = featureColumns.map((column, c) => {
      const first = column[0];
      if (Array.isArray(first)) return first.length;
      if (typeof first === 'number' || typeof first === 'bigint' || typeof first === 'boolean' || first === null)
        return 1;
      throw new DatasetError(`${path}: feature column ${featureNames[c]} is not numeric (found ${typeof first})`);
    });
    const size = widths.reduce((a, b) => a + b, 0);
    const features = new Float32Array(count * size);
    for (let row = 0; row < count; row++) {
      let offset = row * size;
      featureColumns.forEach((column, c) => {
        const value = column[row];
        if (Array.isArray(value)) {
          if (value.length !== widths[c])
            throw new DatasetError(
              `${path}: row ${row} column ${featureNames[c]} has ${value.length} values, expected ${widths[c]}`,
            );
          for (const v of value) features[offset++] = Number(v);
        } else {
          if (value === null || value === undefined)
            throw new DatasetError(`${path}: row ${row} column ${featureNames[c]} is empty`);
          features[offset++] = Number(value);
        }
      });
    }
    const dataset: Dataset = { source: path, features, featureShape: [size], count };
    if (labelColumn) {
      const raw = columns[names.indexOf(labelColumn)]!;
      if (raw.every((v) => typeof v === 'number' || typeof v === 'bigint')) {
        dataset.labels = Int32Array.from(raw as (number | bigint)[], Number);
      } else {
        const labelNames = [...new Set(raw.map(String))].sort();
        dataset.labels = Int32Array.from(raw, (v) => labelNames.indexOf(String(v)));
        dataset.labelNames = labelNames;
      }
    }
    return dataset;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
