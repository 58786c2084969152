import type {
  ColumnSpec,
  InputFieldSpec,
  ModelConfig,
  ScalarStep,
  TensorDtype,
  TensorSpec,
} from '../config/model-config.ts';
import { describeValue } from '../config/config-reader.ts';
import { CaliperError, invalidInput } from '../errors.ts';
import type { TensorData, TensorMap } from '../runtime/tensor.ts';
import type { RequestRow } from './request-schema.ts';
import { checkText } from '../runtime/string-elements.ts';
import { float32ToFloat16Bits } from '../optimize/onnx/tensor-values.ts';

/** Float tensors are written in place; every other dtype goes through float64 and is converted once. */
type ColumnValues = Float32Array | Float64Array;

/**
 * Writes one column group of one row into `out` at `offset`; returns the number of values written. `exact`, given for
 * 64-bit integer tensors, receives the request's own integers beyond 2^53 (bigints) at their positions, which a
 * float64 cannot hold: a column without transform steps passes them into the tensor with every digit.
 */
type ColumnWriter = (
  row: RequestRow,
  out: ColumnValues,
  offset: number,
  where: string,
  exact?: Map<number, bigint>,
) => number;

/**
 * A numeric column's steps composed into one function (the batch columnar path applies the same steps over whole
 * columns, one loop per step: applyScalarSteps in src/batch/columnar/column-preprocessor.ts).
 */
export function scalarTransform(steps: readonly ScalarStep[]): (x: number) => number {
  const fns = steps.map((step): ((x: number) => number) => {
    switch (step.op) {
      case 'identity':
        return (x) => x;
      case 'log1p':
        return Math.log1p;
      case 'standardize':
        return (x) => (x - step.mean) / step.std;
      case 'min_max':
        return (x) => (x - step.min) / (step.max - step.min);
      case 'clip':
        return (x) => (x < step.min ? step.min : Math.min(x, step.max));
      case 'divide':
        return (x) => x / step.by;
      case 'multiply':
        return (x) => x * step.by;
    }
  });
  if (fns.length === 1) return fns[0]!;
  // Composed once into nested calls (the same steps in the same order): a loop over the steps for every value cost
  // more than the steps themselves on the batch columnar path's millions of values.
  return fns.reduce((inner, outer) => (x) => outer(inner(x)));
}

function columnWidth(column: ColumnSpec, inputs: readonly InputFieldSpec[], file: string): number {
  const input = inputs.find((i) => i.name === column.field)!;
  if (column.kind === 'one_hot') return column.categories.length;
  if (column.kind === 'text') return 1;
  if (input.type === 'array') {
    if (input.length === undefined) {
      throw new CaliperError(
        'CALIPER_CONFIG_INVALID',
        `${file}: inputs.${input.name}.length: expected the array length (needed to size the preprocess tensor)`,
      );
    }
    return input.length;
  }
  return 1;
}

function columnWriter(column: ColumnSpec, width: number): ColumnWriter {
  const field = column.field;
  if (column.kind === 'text') return () => 1; // strings are gathered by TensorBuilder.build, not written as numbers
  if (column.kind === 'one_hot') {
    const index = new Map(column.categories.map((c, i) => [c, i]));
    const zerosOnUnknown = column.unknown === 'zeros';
    return (row, out, offset, where) => {
      const value = row[field];
      const at = index.get(value as string);
      if (at === undefined && !zerosOnUnknown) {
        throw invalidInput(
          `${where}${field}: unknown category ${describeValue(value)} (expected one of ${column.categories.join(', ')})`,
        );
      }
      out.fill(0, offset, offset + width);
      if (at !== undefined) out[offset + at] = 1;
      return width;
    };
  }
  if (column.kind === 'lookup') {
    const { table, unknown } = column;
    return (row, out, offset, where) => {
      const value = row[field];
      const mapped = typeof value === 'string' && Object.hasOwn(table, value) ? table[value] : undefined;
      if (mapped === undefined) {
        if (unknown === 'error')
          throw invalidInput(
            `${where}${field}: unknown category ${describeValue(value)} (expected one of ${Object.keys(table).join(', ')})`,
          );
        out[offset] = unknown;
      } else {
        out[offset] = mapped;
      }
      return 1;
    };
  }
  const transform = scalarTransform(column.steps);
  const passThrough = column.steps.every((step) => step.op === 'identity');
  const writeBig = (value: bigint, out: ColumnValues, at: number, exact: Map<number, bigint> | undefined): void => {
    out[at] = transform(Number(value));
    if (exact && passThrough) exact.set(at, value);
  };
  return (row, out, offset, _where, exact) => {
    const value = row[field];
    if (Array.isArray(value)) {
      for (let i = 0; i < width; i++) {
        const v: unknown = value[i];
        if (typeof v === 'bigint') writeBig(v, out, offset + i, exact);
        else out[offset + i] = transform(v as number);
      }
      return width;
    }
    if (typeof value === 'bigint') writeBig(value, out, offset, exact);
    else out[offset] = transform(typeof value === 'boolean' ? Number(value) : (value as number));
    return 1;
  };
}

/** The exact bounds of the 64-bit integer tensors, for values that arrive as bigints. */
const EXACT_RANGES: Partial<Record<TensorDtype, readonly [bigint, bigint]>> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
};

/**
 * The values each narrower dtype holds (after rounding, for integers): a value outside is a 400 naming the field,
 * never a silent wrap-around (300 as uint8 is not 44). The 64-bit bounds are the doubles nearest the type's limits;
 * integers beyond 2^53 sent in the request are checked exactly (EXACT_RANGES) and written with every digit.
 */
const DTYPE_RANGES: Partial<Record<TensorDtype, readonly [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  int64: [-(2 ** 63), 2 ** 63 - 1024],
  uint64: [0, 2 ** 64 - 2048],
  float16: [-65504, 65504],
};

/** The converted tensor data for a dtype other than float32/float64 (those are written in place). */
function convert(
  dtype: Exclude<TensorDtype, 'string' | 'float32' | 'float64'>,
  values: Float64Array,
): TensorData['data'] {
  switch (dtype) {
    case 'float16':
      return float32ToFloat16Bits(values);
    case 'int8':
      return Int8Array.from(values, Math.round);
    case 'uint8':
      return Uint8Array.from(values, Math.round);
    case 'int16':
      return Int16Array.from(values, Math.round);
    case 'uint16':
      return Uint16Array.from(values, Math.round);
    case 'int32':
      return Int32Array.from(values, Math.round);
    case 'uint32':
      return Uint32Array.from(values, Math.round);
    case 'int64':
      return BigInt64Array.from(values, (v) => BigInt(Math.round(v)));
    case 'uint64':
      return BigUint64Array.from(values, (v) => BigInt(Math.round(v)));
    case 'bool':
      return Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0));
  }
}

/** Builds one input tensor [rows, ...shape] from validated request rows, as model.yaml's columns say. */
class TensorBuilder {
  readonly width: number;
  readonly rowShape: number[];
  private readonly writers: ColumnWriter[];
  /** The request field behind each of a row's values, for range errors. */
  private readonly fieldAt: string[];

  constructor(
    readonly spec: TensorSpec,
    inputs: readonly InputFieldSpec[],
    file: string,
  ) {
    if (spec.padding) {
      // One variable-length array column: the width is the padded length, known per batch.
      this.width = 0;
      this.rowShape = [spec.padding.to ?? -1];
      this.fieldAt = [];
      this.writers = [];
      return;
    }
    const widths = spec.columns.map((c) => columnWidth(c, inputs, file));
    this.width = widths.reduce((a, b) => a + b, 0);
    // An array field's values are named by element (pixels[3]), whatever its length; a one-hot group by its field.
    this.fieldAt = spec.columns.flatMap((c, i) =>
      c.kind === 'numeric' && inputs.find((input) => input.name === c.field)?.type === 'array'
        ? Array.from({ length: widths[i]! }, (_, e) => `${c.field}[${e}]`)
        : new Array<string>(widths[i]!).fill(c.field),
    );
    this.writers = spec.columns.map((c, i) => columnWriter(c, widths[i]!));
    this.rowShape = spec.shape ?? [this.width];
    const size = this.rowShape.reduce((a, b) => a * b, 1);
    if (size !== this.width) {
      throw new CaliperError(
        'CALIPER_CONFIG_INVALID',
        `${file}: preprocess ${spec.name}.shape: expected dimensions whose product is the column width ${this.width}, got [${this.rowShape.join(', ')}]`,
      );
    }
  }

  /** Rows padded to the longest (or to `pad_to`) with the pad value, and the mask of 1 per real position. */
  buildPadded(rows: readonly RequestRow[], prefixOf: (i: number) => string): { tensor: TensorData; mask?: TensorData } {
    const padding = this.spec.padding!;
    // model.yaml pads only a tensor of one numeric column (parseModelConfig refuses any other).
    const column = this.spec.columns[0] as Extract<ColumnSpec, { kind: 'numeric' }>;
    const field = column.field;
    const transform = scalarTransform(column.steps);
    const passThrough = column.steps.every((step) => step.op === 'identity');
    const exactRange = EXACT_RANGES[this.spec.dtype];
    const exact = new Map<number, bigint>();
    const lengths = rows.map((row) => (row[field] as number[] | undefined)?.length ?? 0);
    const width = padding.to ?? Math.max(1, ...lengths);
    const dtype = this.spec.dtype as Exclude<TensorDtype, 'string'>;
    const values = dtype === 'float32' ? new Float32Array(rows.length * width) : new Float64Array(rows.length * width);
    const mask = new Float64Array(rows.length * width);
    values.fill(padding.value);
    for (let r = 0; r < rows.length; r++) {
      const array = (rows[r]![field] as number[] | undefined) ?? [];
      for (let i = 0; i < array.length; i++) {
        const element: number | bigint = array[i]!;
        if (typeof element === 'bigint' && exactRange && passThrough) {
          // Beyond 2^53 in a 64-bit tensor: checked and written exactly.
          if (element < exactRange[0] || element > exactRange[1])
            throw invalidInput(
              `${prefixOf(r)}${field}[${i}]: ${element} does not fit preprocess tensor ${this.spec.name} (${dtype}: ${exactRange[0]} to ${exactRange[1]})`,
            );
          exact.set(r * width + i, element);
          mask[r * width + i] = 1;
          continue;
        }
        const v = transform(Number(element));
        const range = DTYPE_RANGES[dtype];
        if (
          range &&
          !(Math.round(v) >= range[0] && Math.round(v) <= range[1]) &&
          !(dtype === 'float16' && Number.isNaN(v))
        ) {
          throw invalidInput(
            `${prefixOf(r)}${field}[${i}]: ${v} does not fit preprocess tensor ${this.spec.name} (${dtype}: ${(exactRange ?? range)[0]} to ${(exactRange ?? range)[1]})`,
          );
        }
        values[r * width + i] = v;
        mask[r * width + i] = 1;
      }
    }
    const dims = [rows.length, width];
    const asType = (data: Float32Array | Float64Array): TensorData['data'] =>
      dtype === 'float32' || dtype === 'float64'
        ? dtype === 'float64'
          ? Float64Array.from(data)
          : Float32Array.from(data)
        : convert(dtype, data instanceof Float64Array ? data : Float64Array.from(data));
    const tensor: TensorData = {
      type: dtype,
      dims,
      data: dtype === 'float32' || dtype === 'float64' ? values : asType(values),
    };
    for (const [at, value] of exact) (tensor.data as BigInt64Array | BigUint64Array)[at] = value;
    if (padding.mask === undefined) return { tensor };
    return { tensor, mask: { type: dtype, dims: [...dims], data: asType(mask) } };
  }

  build(rows: readonly RequestRow[], prefixOf: (i: number) => string): TensorData {
    const dims = [rows.length, ...this.rowShape];
    if (this.spec.dtype === 'string') {
      const fields = this.spec.columns.map((c) => c.field);
      return {
        type: 'string',
        dims,
        data: rows.flatMap((row, r) => fields.map((f) => checkText(`${prefixOf(r)}${f}: string`, row[f] as string))),
      };
    }
    const dtype = this.spec.dtype;
    const size = rows.length * this.width;
    const values = dtype === 'float32' ? new Float32Array(size) : new Float64Array(size);
    const exactRange = EXACT_RANGES[dtype];
    const exact = exactRange ? new Map<number, bigint>() : undefined;
    for (let r = 0; r < rows.length; r++) {
      let offset = r * this.width;
      const where = prefixOf(r);
      for (const write of this.writers) offset += write(rows[r]!, values, offset, where, exact);
    }
    if (exact && exact.size > 0) this.checkExact(exact, exactRange!, prefixOf);
    const range = DTYPE_RANGES[dtype];
    if (range) this.checkRange(values as Float64Array, range, prefixOf, exact);
    const data = dtype === 'float32' || dtype === 'float64' ? values : convert(dtype, values as Float64Array);
    if (exact) for (const [at, value] of exact) (data as BigInt64Array | BigUint64Array)[at] = value;
    return { type: dtype, dims, data };
  }

  private checkExact(
    exact: ReadonlyMap<number, bigint>,
    [min, max]: readonly [bigint, bigint],
    prefixOf: (i: number) => string,
  ): void {
    for (const [at, value] of exact) {
      if (value >= min && value <= max) continue;
      throw invalidInput(
        `${prefixOf(Math.floor(at / this.width))}${this.fieldAt[at % this.width]}: ${value} does not fit preprocess tensor ${this.spec.name} (${this.spec.dtype}: ${min} to ${max})`,
      );
    }
  }

  private checkRange(
    values: Float64Array,
    [min, max]: readonly [number, number],
    prefixOf: (i: number) => string,
    exact?: ReadonlyMap<number, bigint>,
  ): void {
    const integer = this.spec.dtype !== 'float16';
    const limits = EXACT_RANGES[this.spec.dtype] ?? [min, max];
    for (let i = 0; i < values.length; i++) {
      const v = integer ? Math.round(values[i]!) : values[i]!;
      if ((v >= min && v <= max) || (!integer && Number.isNaN(v)) || exact?.has(i)) continue;
      const row = Math.floor(i / this.width);
      throw invalidInput(
        `${prefixOf(row)}${this.fieldAt[i % this.width]}: ${values[i]} does not fit preprocess tensor ${this.spec.name} (${this.spec.dtype}: ${limits[0]} to ${limits[1]}${integer ? ', after rounding' : ''})`,
      );
    }
  }
}

/** model.yaml's preprocess section compiled: request rows → named input tensors. */
export class Preprocessor {
  readonly builders: TensorBuilder[];

  constructor(config: Pick<ModelConfig, 'tensors' | 'inputs' | 'file'>) {
    this.builders = config.tensors.map((t) => new TensorBuilder(t, config.inputs, config.file));
  }

  run(rows: readonly RequestRow[], prefixOf: (i: number) => string): TensorMap {
    const tensors: TensorMap = {};
    for (const builder of this.builders) {
      if (builder.spec.padding) {
        const { tensor, mask } = builder.buildPadded(rows, prefixOf);
        tensors[builder.spec.name] = tensor;
        if (mask) tensors[builder.spec.padding.mask!] = mask;
      } else {
        tensors[builder.spec.name] = builder.build(rows, prefixOf);
      }
    }
    return tensors;
  }
}

/**
 * The tensors a batch of requests pads along axis 1 to its longest row (padded to the batch's longest, not to a
 * fixed `pad_to`), with their pad value; attention masks pad with 0.
 */
export function padValuesOf(tensors: readonly TensorSpec[]): Map<string, number> {
  const pads = new Map<string, number>();
  for (const spec of tensors) {
    if (!spec.padding || spec.padding.to !== undefined) continue;
    pads.set(spec.name, spec.padding.value);
    if (spec.padding.mask !== undefined) pads.set(spec.padding.mask, 0);
  }
  return pads;
}
