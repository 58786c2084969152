import type { DuckDBConnection } from '@duckdb/node-api';
import type { DataChunk, ScalarFunctionInfo, Vector } from '@duckdb/node-bindings';
import type { InThreadInstance } from '../../runtime/model-instance.ts';
import { doubleOrNaN } from './column-batch.ts';
import type { ColumnarPlan } from './columnar-plan.ts';
import { compilePredictionWriter, compileScoringKernel } from './scoring-kernel.ts';
import { duckdb, duckdbBindings, releaseVectorCopies, sqlIdentifier } from '../io/duckdb-engine.ts';

/**
 * The model called from inside a DuckDB query (the one-pass path, scoring-copy.ts): a scalar function that receives the
 * request fields of up to 2048 rows at a time as DOUBLE vectors (strings as dictionary codes computed in SQL), runs
 * model.yaml's columnar validation and preprocess, ONNX Runtime synchronously in the calling thread, and the
 * postprocess, and answers one STRUCT of the prediction fields per row. Registered on the main thread's DuckDB and, for
 * the second half of a job scored in halves, on a worker thread's own DuckDB (half-worker.ts).
 */

/** The query stopped because a row needs the row path (its reason is written by the parts path). */
export const ROW_PATH_NEEDED = 'caliper: a row needs the row path';

let functionCounter = 0;

/** Vectors read between two collections of their data's copies (releaseVectorCopies: 3 fields × 16 KiB each). */
const VECTORS_PER_COLLECTION = 16;

/**
 * Registers `caliper_score_N` for `plan` on `connection`: fields in (DOUBLE each), STRUCT of the prediction fields out
 * (BOOLEAN for a threshold, else DOUBLE). A vector holding a row the columnar validation marks stops the query with
 * ROW_PATH_NEEDED; an output not along the batch axis stops it with that output's name. `onVector` is told each
 * vector's rows once they are scored. Returns the function's name.
 */
export function registerScoreFunction(
  connection: DuckDBConnection,
  plan: ColumnarPlan,
  instance: InThreadInstance,
  onVector: (rows: number) => void,
): string {
  const name = `caliper_score_${functionCounter++}`;
  const capacity = 2048;
  const values = plan.fields.map(() => new Float64Array(capacity));
  // Validation and preprocess compiled into one loop, into input tensors reused from vector to vector (the model runs
  // synchronously here and is done with them before the next vector); the postprocess likewise.
  const kernel = compileScoringKernel(plan, capacity);
  let vectors = 0;
  const writer = compilePredictionWriter(plan, capacity);
  const fn = duckdb.DuckDBScalarFunction.create({
    name,
    returnType: duckdb.STRUCT(
      Object.fromEntries(plan.predictions.map((p, i) => [`p${i}`, p.boolean ? duckdb.BOOLEAN : duckdb.DOUBLE])),
    ),
    parameterTypes: plan.fields.map(() => duckdb.DOUBLE),
    // Never folded into a constant, never evaluated once for equal arguments.
    volatile: true,
    mainFunction: () => undefined,
  });
  // The binding's own callback: no wrapper objects per vector.
  duckdbBindings.scalar_function_set_function(
    fn.scalar_function,
    (info: ScalarFunctionInfo, input: DataChunk, output: Vector) => {
      try {
        const n = duckdbBindings.data_chunk_get_size(input);
        for (let c = 0; c < values.length; c++) {
          // DuckDB flattens a scalar function's inputs; the fields are never null (doubleOrNaN).
          const bytes = duckdbBindings.vector_get_data(duckdbBindings.data_chunk_get_vector(input, c), n * 8);
          values[c]!.set(new Float64Array(bytes.buffer, bytes.byteOffset, n));
        }
        if (++vectors % VECTORS_PER_COLLECTION === 0) releaseVectorCopies();
        const inputs = kernel.run(values, n);
        if (inputs === undefined) {
          duckdbBindings.scalar_function_set_error(info, ROW_PATH_NEEDED);
          return;
        }
        const outputs = instance.runSync(inputs, plan.outputNames);
        for (const [output, tensor] of Object.entries(outputs))
          if (tensor.dims[0] !== n)
            throw new Error(`output ${output}: ${tensor.dims[0]} rows for a batch of ${n} (not along the batch axis)`);
        const columns = writer.run(outputs, n);
        for (let i = 0; i < columns.length; i++) {
          const column = columns[i]!;
          duckdbBindings.copy_data_to_vector(
            duckdbBindings.struct_vector_get_child(output, i),
            0,
            column.buffer,
            0,
            n * column.BYTES_PER_ELEMENT,
          );
        }
        onVector(n);
      } catch (error) {
        duckdbBindings.scalar_function_set_error(info, error instanceof Error ? error.message : String(error));
      }
    },
  );
  connection.registerScalarFunction(fn);
  return name;
}

/**
 * The SELECT of `from` (a DuckDB table expression over one input file) with its predictions computed by scalar
 * function `fn` (registerScoreFunction), in the columns and types the parts path writes: the kept columns, then one
 * column per prediction field.
 */
export function scoredSelect(from: string, plan: ColumnarPlan, fn: string): string {
  return `SELECT ${[...plan.keptSql, ...predictionColumns(plan)].join(', ')} FROM (SELECT *, ${scoringCall(plan, fn)} FROM ${from}) i`;
}

/**
 * The SELECT of the prediction columns only (scoredSelect's last columns, same names and types) of `from`: the output
 * of a job whose input columns are kept byte for byte (parquet-stitch.ts). DuckDB reads only the fields' columns.
 */
export function predictionsSelect(from: string, plan: ColumnarPlan, fn: string): string {
  return `SELECT ${predictionColumns(plan).join(', ')} FROM (SELECT ${scoringCall(plan, fn)} FROM ${from}) i`;
}

/** Scalar function `fn` called on `plan`'s fields, as the column __caliper_scored. */
function scoringCall(plan: ColumnarPlan, fn: string): string {
  return `${fn}(${plan.fields.map((f) => doubleOrNaN(f.sql)).join(', ')}) AS __caliper_scored`;
}

/** Each prediction field taken from __caliper_scored under its own name. */
function predictionColumns(plan: ColumnarPlan): string[] {
  return plan.predictions.map((p, i) => `i.__caliper_scored.p${i} AS ${sqlIdentifier(p.name)}`);
}
