import type { ScalarStep } from '../../config/model-config.ts';
import { CaliperError } from '../../errors.ts';
import type { TensorMap } from '../../runtime/tensor.ts';
import { writePredictions } from './column-postprocessor.ts';
import { buildTensors } from './column-preprocessor.ts';
import { rowsForRowPath } from './column-validator.ts';
import type { ColumnarPlan } from './columnar-plan.ts';

/**
 * The one-pass scorer's validation and preprocess for one plan, compiled into ONE loop over a vector's rows (a
 * JavaScript function generated from the plan, as fast-json-stringify compiles a schema into a serializer).
 *
 * Why: DuckDB hands the scoring function about 500 vectors of 2048 rows per million rows, one process per job, so the
 * generic column loops (column-validator.ts, column-preprocessor.ts: a loop per field, per step, per column) spend
 * most of a job unoptimized before V8 has compiled each of them; one loop per plan is compiled within the first
 * vectors. Measured on the fraud plan, 488 vectors in a fresh process (load 2.6–4): 210–286 ms for the generic loops
 * against 42–54 ms for the compiled one.
 *
 * It computes exactly what the generic path computes: a vector holds a row the row path must see iff
 * rowsForRowPath marks one (same comparisons), and the tensors of a clean vector equal buildTensors' (the numeric steps
 * in doubles in the same order, as the row path's scalarTransform; one-hot slots; lookups with their unknown value).
 * The generated source holds only array indices and operators: every model.yaml number is read from arrays at run
 * time, never written into the source. Where Node forbids code generation (`--disallow-code-generation-from-strings`)
 * the kernel runs the generic loops instead: the same results, at their speed.
 */
export interface ScoringKernel {
  /**
   * Validates and preprocesses rows [0, n) of `values` (the plan's field columns, then its parse-error column if any)
   * into the kernel's reused input tensors. Returns undefined when any row needs the row path (nothing else is then
   * meaningful), else the input tensors: views of arrays reused by the next call.
   */
  run(values: readonly Float64Array[], n: number): TensorMap | undefined;
}

/** Doubles hold integers exactly up to here (as column-validator.ts). */
const EXACT_INTEGER = 2 ** 53;

/** Source text of one numeric step applied to variable `x`, constants read from K at the given indices. */
function stepSource(step: ScalarStep, constant: (value: number) => string): string {
  switch (step.op) {
    case 'identity':
      return '';
    case 'log1p':
      return 'x = Math.log1p(x);';
    case 'standardize':
      return `x = (x - ${constant(step.mean)}) / ${constant(step.std)};`;
    case 'min_max':
      return `x = (x - ${constant(step.min)}) / ${constant(step.max - step.min)};`;
    case 'clip':
      return `x = x < ${constant(step.min)} ? ${constant(step.min)} : Math.min(x, ${constant(step.max)});`;
    case 'divide':
      return `x = x / ${constant(step.by)};`;
    case 'multiply':
      return `x = x * ${constant(step.by)};`;
  }
}

/**
 * The kernel source of `plan`: the body of a function of (V: the field columns, n: rows, T: the tensor arrays) that
 * returns 1 when a row needs the row path, over `constants` (K) and `tables` (A) given when it is compiled.
 */
export function scoringKernelSource(plan: ColumnarPlan): {
  source: string;
  constants: number[];
  tables: ArrayLike<number>[];
} {
  const constants: number[] = [];
  const tables: ArrayLike<number>[] = [];
  // Constants and tables are read once per call into locals (k0, a0, ...), not per row.
  const constant = (value: number): string => `k${constants.push(value) - 1}`;
  const table = (values: ArrayLike<number>): string => `a${tables.push(values) - 1}`;
  const head: string[] = [];
  const checks: string[] = [];
  const writes: string[] = [];
  const fieldCount = plan.fields.length + (plan.parseErrors ? 1 : 0);
  for (let f = 0; f < fieldCount; f++) head.push(`const v${f} = V[${f}];`);
  plan.fields.forEach((field, f) => {
    const { type, minimum, maximum } = field.spec;
    if (type === 'number' || type === 'integer') {
      const min = constant(minimum ?? -Infinity);
      const max = constant(maximum ?? Infinity);
      const integer = type === 'integer' ? ` || !Number.isInteger(x${f})` : '';
      checks.push(
        `if (!(x${f} >= ${min} && x${f} <= ${max}) || !Number.isFinite(x${f}) || Math.abs(x${f}) >= ${constant(EXACT_INTEGER)}${integer}) bad = 1;`,
      );
    } else if (field.allowed) {
      const allowed = table(field.allowed);
      checks.push(`if (!(x${f} >= 0) || ${allowed}[x${f}] !== 1) bad = 1;`);
    } else checks.push(`if (Number.isNaN(x${f})) bad = 1;`);
  });
  if (plan.parseErrors) checks.push(`if (x${plan.fields.length} === 1) bad = 1;`);
  plan.tensors.forEach((tensor, t) => {
    head.push(`const t${t} = T[${t}];`, `t${t}.fill(0, 0, n * ${tensor.width});`);
    let offset = 0;
    for (const column of tensor.columns) {
      const at = `r * ${tensor.width} + ${offset}`;
      const code = `x${column.field}`;
      if (column.kind === 'numeric') {
        writes.push(
          `{ let x = ${code}; ${column.steps.map((s) => stepSource(s, constant)).join(' ')} t${t}[${at}] = x; }`,
        );
        offset += 1;
      } else if (column.kind === 'one_hot') {
        const slot = table(column.slot);
        if (!column.zerosOnUnknown) checks.push(`if (!(${code} >= 0) || ${slot}[${code}] < 0) bad = 1;`);
        writes.push(`if (${code} >= 0 && ${slot}[${code}] >= 0) t${t}[${at} + ${slot}[${code}]] = 1;`);
        offset += column.width;
      } else {
        const value = table(column.value);
        if (column.unknown === undefined)
          checks.push(`if (!(${code} >= 0) || Number.isNaN(${value}[${code}])) bad = 1;`);
        const unknown = constant(column.unknown ?? 0);
        writes.push(
          `{ const l = ${code} >= 0 ? ${value}[${code}] : NaN; t${t}[${at}] = Number.isNaN(l) ? ${unknown} : l; }`,
        );
        offset += 1;
      }
    }
  });
  const reads = Array.from({ length: fieldCount }, (_, f) => `const x${f} = v${f}[r];`).join(' ');
  const source = [
    ...constants.map((_, i) => `const k${i} = K[${i}];`),
    ...tables.map((_, i) => `const a${i} = A[${i}];`),
    ...head,
    'let bad = 0;',
    `for (let r = 0; r < n; r++) { ${reads} ${[...checks, ...writes].join(' ')} }`,
    'return bad;',
  ].join('\n');
  return { source, constants, tables };
}

/** Compiles `plan`'s validation and preprocess for vectors of up to `capacity` rows (see ScoringKernel). */
export function compileScoringKernel(plan: ColumnarPlan, capacity: number): ScoringKernel {
  const { source, constants, tables } = scoringKernelSource(plan);
  const K = Float64Array.from(constants);
  const loop = compiled(() =>
    new Function('K', 'A', `return function scoringKernel(V, n, T) {\n${source}\n};`)(K, tables),
  ) as ((values: readonly Float64Array[], n: number, tensors: (Float32Array | Float64Array)[]) => number) | undefined;
  if (!loop)
    return {
      run(values, n) {
        const batch = { firstRow: 0, rows: n, values: values.map((v) => v.subarray(0, n)) };
        const marked = rowsForRowPath(plan, batch);
        return marked.includes(1) ? undefined : buildTensors(plan, batch, marked, 0, n);
      },
    };
  const data = plan.tensors.map((t) =>
    t.dtype === 'float32' ? new Float32Array(capacity * t.width) : new Float64Array(capacity * t.width),
  );
  return {
    run(values, n) {
      if (n > capacity) throw new RangeError(`scoring kernel: ${n} rows for buffers of ${capacity}`);
      if (loop(values, n, data) !== 0) return undefined;
      const tensors: TensorMap = {};
      plan.tensors.forEach((tensor, t) => {
        tensors[tensor.name] = {
          type: tensor.dtype,
          dims: [n, ...tensor.dims],
          data: data[t]!.subarray(0, n * tensor.width),
        };
      });
      return tensors;
    },
  };
}

/**
 * The one-pass scorer's postprocess for one plan, compiled into one loop as ScoringKernel is: each prediction field
 * of rows [0, n), picked from the model's outputs (or an earlier field), squashed and thresholded with the arithmetic of
 * writePredictions (column-postprocessor.ts), into arrays reused by the next call: a Float64Array per field, a
 * Uint8Array of 0/1 for a thresholded one (the bytes DuckDB's DOUBLE and BOOLEAN vectors take).
 */
export interface PredictionWriter {
  run(outputs: TensorMap, n: number): (Float64Array<ArrayBuffer> | Uint8Array<ArrayBuffer>)[];
}

/** The writer source of `plan`: the body of a function of (O: the outputs' data, in `outputs` order, n, C: columns). */
export function predictionWriterSource(plan: ColumnarPlan): { source: string; constants: number[]; outputs: string[] } {
  const constants: number[] = [];
  const constant = (value: number): string => `k${constants.push(value) - 1}`;
  const outputs: string[] = [];
  const body: string[] = [];
  plan.predictions.forEach((field, p) => {
    let read: string;
    if ('output' in field.source) {
      let o = outputs.indexOf(field.source.output);
      if (o < 0) o = outputs.push(field.source.output) - 1;
      read = `o${o}[r * ${constant(field.source.stride)} + ${constant(field.source.index)}]`;
    } else read = `c${field.source.field}[r]`;
    const sigmoid = field.sigmoid ? ' v = 1 / (1 + Math.exp(-v));' : '';
    const store = field.threshold === undefined ? 'v' : `v > ${constant(field.threshold)} ? 1 : 0`;
    body.push(`{ let v = ${read};${sigmoid} c${p}[r] = ${store}; }`);
  });
  const source = [
    ...constants.map((_, i) => `const k${i} = K[${i}];`),
    ...outputs.map((_, i) => `const o${i} = O[${i}];`),
    ...plan.predictions.map((_, p) => `const c${p} = C[${p}];`),
    `for (let r = 0; r < n; r++) { ${body.join(' ')} }`,
  ].join('\n');
  return { source, constants, outputs };
}

/** Compiles `plan`'s postprocess for vectors of up to `capacity` rows (see PredictionWriter). */
export function compilePredictionWriter(plan: ColumnarPlan, capacity: number): PredictionWriter {
  const { source, constants, outputs } = predictionWriterSource(plan);
  const K = Float64Array.from(constants);
  const loop = compiled(() => new Function('K', `return function predictionWriter(O, n, C) {\n${source}\n};`)(K)) as
    | ((data: (Float32Array | Float64Array)[], n: number, columns: (Float64Array | Uint8Array)[]) => void)
    | undefined;
  const doubles = plan.predictions.map(() => new Float64Array(capacity));
  const columns = plan.predictions.map((p, i): Float64Array<ArrayBuffer> | Uint8Array<ArrayBuffer> =>
    p.boolean ? new Uint8Array(capacity) : doubles[i]!,
  );
  return {
    run(tensors, n) {
      if (n > capacity) throw new RangeError(`prediction writer: ${n} rows for arrays of ${capacity}`);
      const data = outputs.map((name) => {
        const values = tensors[name]?.data;
        if (!(values instanceof Float32Array || values instanceof Float64Array))
          throw new CaliperError('CALIPER_INFERENCE_FAILED', `output ${name}: expected a float tensor`);
        return values;
      });
      if (loop) loop(data, n, columns);
      else {
        // Code generation forbidden: writePredictions' loops, booleans then narrowed to bytes.
        writePredictions(plan, tensors, doubles, 0, n);
        plan.predictions.forEach((p, i) => {
          if (p.boolean) (columns[i] as Uint8Array).set(doubles[i]!.subarray(0, n));
        });
      }
      return columns;
    },
  };
}

/** `make()`'s compiled function, or undefined where Node forbids code generation from strings (an EvalError). */
function compiled(make: () => unknown): unknown {
  try {
    return make();
  } catch (error) {
    if (error instanceof EvalError) return undefined;
    throw error;
  }
}
