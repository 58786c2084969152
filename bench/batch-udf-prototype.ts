/*
 * Prototype (issue 18, session 8): scoring inside ONE DuckDB COPY through a vectorized scalar function.
 *
 *   COPY (SELECT *, s.fraud_probability, s.is_fraud FROM (SELECT *, caliper_score(fields…) AS s FROM read_X(IN)))
 *     TO OUT
 *
 * caliper_score receives DuckDB's 2048-row vectors of the three request fields (as DOUBLE, strings as dictionary codes
 * computed in SQL), runs the fraud model.yaml's columnar validation and preprocess (the columnar path's own functions),
 * ONNX Runtime synchronously through the native binding, and the postprocess, and writes a STRUCT(outcome, predictions)
 * vector. Usage:
 *   node --import tsx bench/batch-udf-prototype.ts IN.(csv|parquet) OUT.(csv|parquet) THREADS
 * prints one JSON line: wall ms of the COPY (in-process, instance made beforehand), process CPU ms during it, calls.
 * `--floor` copies with constant predictions instead (the I/O floor at the same threads).
 */
import { createRequire } from 'node:module';
import type { DuckDBDataChunk } from '@duckdb/node-api';
import type ort from 'onnxruntime-node';
import { writePredictions } from '../src/batch/columnar/column-postprocessor.ts';
import { buildTensors } from '../src/batch/columnar/column-preprocessor.ts';
import { rowsForRowPath } from '../src/batch/columnar/column-validator.ts';
import { columnarPlan } from '../src/batch/columnar/columnar-plan.ts';
import { loadBatchModel } from '../src/batch/batch-model.ts';
import { duckdb, duckdbBindings } from '../src/batch/io/duckdb-engine.ts';
import { loadNativeSession } from '../src/runtime/ort-adapter.ts';

const { Tensor }: typeof ort = createRequire(import.meta.url)('onnxruntime-node');
const [input, output, threadsArg, mode] = process.argv.slice(2) as [string, string, string, string | undefined];
const MODEL = process.env.MODEL ?? '/tmp/b8/fraud_detector';

const version = await loadBatchModel(MODEL);
const instance = await duckdb.DuckDBInstance.create(':memory:', {
  threads: threadsArg,
  preserve_insertion_order: 'true',
  enable_external_file_cache: 'false',
  ...(process.env.MEM ? { memory_limit: process.env.MEM } : {}),
});
const connection = await instance.connect();
const reader = input.endsWith('.csv')
  ? `read_csv('${input}')`
  : input.endsWith('.jsonl')
    ? `read_json('${input}', format = 'newline_delimited')`
    : `read_parquet('${input}')`;
const schemaResult = await connection.run(`SELECT * FROM ${reader} LIMIT 0`);
const schema = { names: schemaResult.columnNames(), types: schemaResult.columnTypes() };
const spec = { map: {}, columns: [] } as unknown as Parameters<typeof columnarPlan>[1];
const plan = columnarPlan(version, spec, { path: input, format: 'parquet' } as never, schema);
if (typeof plan === 'string') throw new Error(plan);

const session = loadNativeSession(`${MODEL}/1/model.onnx`, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
  logSeverityLevel: 3,
});
const fetches: Record<string, null> = Object.fromEntries(plan.outputNames.map((n) => [n, null]));
const RUN_OPTIONS = {};

let calls = 0;
let rowsScored = 0;
let jsMs = 0;
const ROWS = 2048;
const values = plan.fields.map(() => new Float64Array(ROWS));
const predictions = plan.predictions.map(() => new Float64Array(ROWS));
const booleans = new Uint8Array(ROWS);

const resultType = duckdb.STRUCT({
  outcome: duckdb.UTINYINT,
  ...Object.fromEntries(plan.predictions.map((p) => [p.name, p.boolean ? duckdb.BOOLEAN : duckdb.DOUBLE])),
});

const score = duckdb.DuckDBScalarFunction.create({
  name: 'caliper_score',
  returnType: resultType,
  parameterTypes: plan.fields.map(() => duckdb.DOUBLE),
  volatile: true,
  mainFunction: () => undefined,
});
// The binding's callback directly (no node-api wrapper objects per call).
duckdbBindings.scalar_function_set_function(score.scalar_function, (_info, inputChunk, outputVector) => {
  const started = performance.now();
  calls++;
  const n = duckdbBindings.data_chunk_get_size(inputChunk);
  const chunk = { chunk: inputChunk } as unknown as DuckDBDataChunk;
  for (let c = 0; c < values.length; c++) {
    const vector = duckdbBindings.data_chunk_get_vector(chunk.chunk, c);
    const bytes = duckdbBindings.vector_get_data(vector, n * 8);
    values[c]!.set(new Float64Array(bytes.buffer, bytes.byteOffset, n));
  }
  const batch = { firstRow: 0, rows: n, values: values.map((v) => v.subarray(0, n)) };
  const marked = rowsForRowPath(plan, batch);
  const tensors = buildTensors(plan, batch, marked, 0, n);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) feeds[name] = new Tensor(t.type as 'float32', t.data, t.dims);
  const out = session.run(feeds, fetches, RUN_OPTIONS);
  const outputs = Object.fromEntries(
    Object.entries(out).map(([name, t]) => [name, { type: 'float32', dims: t.dims, data: t.data }]),
  );
  writePredictions(plan, outputs as never, predictions, 0, n);
  duckdbBindings.copy_data_to_vector(
    duckdbBindings.struct_vector_get_child(outputVector, 0),
    0,
    marked.buffer as ArrayBuffer,
    0,
    n,
  );
  plan.predictions.forEach((p, i) => {
    const child = duckdbBindings.struct_vector_get_child(outputVector, i + 1);
    if (p.boolean) {
      const src = predictions[i]!;
      for (let r = 0; r < n; r++) booleans[r] = src[r]!;
      duckdbBindings.copy_data_to_vector(child, 0, booleans.buffer, 0, n);
    } else duckdbBindings.copy_data_to_vector(child, 0, predictions[i]!.buffer, 0, n * 8);
  });
  rowsScored += n;
  jsMs += performance.now() - started;
});
connection.registerScalarFunction(score);

const fieldSql = plan.fields.map((f) => `coalesce(${f.sql}, 'NaN'::DOUBLE)`).join(', ');
const names = plan.predictions.map((p) => `s.${p.name}`).join(', ');
const format = output.endsWith('.csv')
  ? 'FORMAT csv, HEADER true'
  : output.endsWith('.jsonl')
    ? 'FORMAT json'
    : 'FORMAT parquet';
const sql =
  mode === '--floor'
    ? `COPY (SELECT *, 0.5::DOUBLE AS fraud_probability, false AS is_fraud FROM ${reader}) TO '${output}' (${format})`
    : `COPY (SELECT * EXCLUDE (s), ${names} FROM (SELECT *, caliper_score(${fieldSql}) AS s FROM ${reader})) TO '${output}' (${format})`;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await connection.run(sql);
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log(
  JSON.stringify({
    mode: mode ?? 'udf',
    input,
    threads: Number(threadsArg),
    wallMs: Math.round(wallMs),
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    jsMs: Math.round(jsMs),
    calls,
    rowsScored,
  }),
);
connection.closeSync();
instance.closeSync();
