/*
 * The fixed costs around the Parquet halves of the one-pass scoring COPY (src/batch/io/parquet-halves.ts,
 * parquet-footer.ts), each timed once per fresh process, as a `caliper batch` pays it: cold code, first call.
 *  - the cut: the row-group boundary nearest the middle row of the input, from its footer (parquetHalvesCut);
 *  - the join: the second half's output appended to the first under one footer (appendParquetFile).
 * The halves are written as the two COPYs write them: rows [0, cut) and [cut, end) of the input, one thread each, the
 * two prediction columns random (their pages do not compress: the halves are as large as a real job's, 10-11 MB).
 * Usage: node --import tsx bench/parquet-join.ts [--input bench/data/fraud-1m.parquet] [--rounds 9]
 * Run it under the bench lock (`flock /tmp/caliper-bench.lock …`) on a shared machine.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { appendParquetFile } from '../src/batch/io/parquet-footer.ts';
import { parquetHalvesCut } from '../src/batch/io/parquet-halves.ts';
import { numberOption } from './bench-options.ts';

const args = process.argv.slice(2);
const child = args.indexOf('--child');

if (child >= 0) {
  // One round: the cut of the input, then the join of a fresh copy of the first half with the second.
  const [input, dir] = [args[child + 1]!, args[child + 2]!];
  copyFileSync(join(dir, 'first.parquet'), join(dir, 'joined.parquet'));
  const t0 = performance.now();
  const cut = parquetHalvesCut(input, 1);
  const t1 = performance.now();
  appendParquetFile(join(dir, 'joined.parquet'), join(dir, 'second.parquet'));
  const t2 = performance.now();
  process.stdout.write(`${JSON.stringify({ cut, cutMs: t1 - t0, joinMs: t2 - t1 })}\n`);
} else {
  const input = args.includes('--input') ? args[args.indexOf('--input') + 1]! : 'bench/data/fraud-1m.parquet';
  const rounds = numberOption('--rounds', 9);
  const dir = mkdtempSync(join(tmpdir(), 'caliper-parquet-join-'));
  try {
    const cut = parquetHalvesCut(input, 1);
    if (cut === undefined) throw new Error(`${input}: fewer than two row groups`);
    const connection = await (await DuckDBInstance.create(':memory:', { threads: '1' })).connect();
    const rowsSql = (where: string): string =>
      `SELECT * EXCLUDE (file_row_number), random() AS fraud_probability, random() < 0.5 AS is_fraud FROM read_parquet('${input}', file_row_number = true) WHERE ${where}`;
    for (const [name, where] of [
      ['first', `file_row_number < ${cut}`],
      ['second', `file_row_number >= ${cut}`],
    ])
      await connection.run(`COPY (${rowsSql(where)}) TO '${join(dir, `${name}.parquet`)}' (FORMAT parquet)`);
    connection.closeSync();
    const runs: { cutMs: number; joinMs: number }[] = [];
    for (let r = 0; r < rounds; r++) {
      const run = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', input, dir], {
        encoding: 'utf8',
      });
      if (run.status !== 0) throw new Error(run.stderr);
      runs.push(JSON.parse(run.stdout));
    }
    const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ms = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(' ');
    console.log(`${input}: cut before row ${cut}, ${rounds} fresh processes`);
    console.log(
      `cut  (parquetHalvesCut): median ${median(runs.map((r) => r.cutMs)).toFixed(2)} ms [${ms(runs.map((r) => r.cutMs))}]`,
    );
    console.log(
      `join (appendParquetFile): median ${median(runs.map((r) => r.joinMs)).toFixed(2)} ms [${ms(runs.map((r) => r.joinMs))}]`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
