/*
 * Writes synthetic fraud transactions as Parquet (or CSV/JSONL) for batch scoring and its benchmark.
 *   node --import tsx scripts/generate-fraud-data.ts [--rows 1000000] [--out bench/data/fraud-1m.parquet]
 *     [--seed 1] [--bad-fraction 0]
 * Rows are generated in blocks of 2048 (one DuckDB data chunk), so memory stays flat for any row count.
 * Columns: transaction_id (row number), transaction_amount, merchant_category, time_since_last_txn.
 * With --bad-fraction > 0 some rows get a null amount, a negative time or an unknown category.
 */
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DOUBLE, DuckDBDataChunk, DuckDBInstance, INTEGER, VARCHAR, type DuckDBValue } from '@duckdb/node-api';
import { SeededRandom } from '../examples/training/mlp-trainer.ts';
import { syntheticTransactions } from '../examples/fraud-detector/train.ts';

const BLOCK = 2048;

export interface FraudDataOptions {
  rows: number;
  out: string;
  seed?: number;
  badFraction?: number;
}

function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Writes `rows` transactions to `out` (format from the extension: .parquet, .csv, .jsonl); returns the path. */
export async function generateFraudData(options: FraudDataOptions): Promise<string> {
  const out = resolve(options.out);
  const seed = options.seed ?? 1;
  const badFraction = options.badFraction ?? 0;
  mkdirSync(dirname(out), { recursive: true });
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run(
    'CREATE TABLE t (transaction_id INTEGER, transaction_amount DOUBLE, merchant_category VARCHAR, time_since_last_txn DOUBLE)',
  );
  const appender = await connection.createAppender('t');
  const bad = new SeededRandom(seed ^ 0x5bd1e995);
  for (let start = 0; start < options.rows; start += BLOCK) {
    const n = Math.min(BLOCK, options.rows - start);
    const { transactions } = syntheticTransactions(n, seed * 1_000_003 + start / BLOCK);
    const ids: DuckDBValue[] = new Array(n);
    const amounts: DuckDBValue[] = new Array(n);
    const categories: DuckDBValue[] = new Array(n);
    const seconds: DuckDBValue[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const t = transactions[i]!;
      ids[i] = start + i;
      amounts[i] = t.transaction_amount;
      categories[i] = t.merchant_category;
      seconds[i] = t.time_since_last_txn;
      if (badFraction > 0 && bad.next() < badFraction) {
        const kind = bad.int(3);
        if (kind === 0) amounts[i] = null;
        else if (kind === 1) seconds[i] = -1;
        else categories[i] = 'casino';
      }
    }
    const chunk = DuckDBDataChunk.create([INTEGER, DOUBLE, VARCHAR, DOUBLE], n);
    chunk.setColumns([ids, amounts, categories, seconds]);
    appender.appendDataChunk(chunk);
  }
  appender.closeSync();
  const format = extname(out).toLowerCase();
  const copyOptions =
    format === '.csv'
      ? '(FORMAT csv, HEADER true)'
      : format === '.jsonl' || format === '.json'
        ? '(FORMAT json)'
        : '(FORMAT parquet, ROW_GROUP_SIZE 122880)';
  const staging = `${out}.tmp-${process.pid}`;
  rmSync(staging, { force: true });
  await connection.run(`COPY t TO ${sqlString(staging)} ${copyOptions}`);
  renameSync(staging, out);
  connection.closeSync();
  instance.closeSync();
  return out;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('generate-fraud-data.ts')) {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '1000000' },
      out: { type: 'string' },
      seed: { type: 'string', default: '1' },
      'bad-fraction': { type: 'string', default: '0' },
    },
  });
  const rows = Number(values.rows);
  if (!Number.isInteger(rows) || rows < 1) throw new Error(`--rows: expected a positive integer, got "${values.rows}"`);
  const out = values.out ?? `bench/data/fraud-${rows % 1_000_000 === 0 ? `${rows / 1_000_000}m` : rows}.parquet`;
  const started = performance.now();
  const path = await generateFraudData({
    rows,
    out,
    seed: Number(values.seed),
    badFraction: Number(values['bad-fraction']),
  });
  console.log(`wrote ${rows} rows to ${path} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
