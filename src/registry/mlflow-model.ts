import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse, parseDocument, stringify } from 'yaml';
import { CaliperError } from '../errors.ts';
import { OnnxSession } from '../runtime/onnx-session.ts';
import type { ModelRegistry, RegisteredVersion } from './model-registry.ts';

/** What an MLflow model folder says about an ONNX model: its file, signature and provenance. */
export interface MlflowModel {
  /** The folder holding MLmodel. */
  dir: string;
  /** The ONNX file (flavors.onnx.data). */
  onnxFile: string;
  /** The request schema from signature.inputs, when MLmodel has one. */
  inputs?: MlflowField[];
  /** run_id, model_uuid, mlflow_version, utc_time_created as tags (mlflow.*). */
  tags: Record<string, string>;
}

/** One signature input: a named column (double, long, string…) or a tensor (dtype and shape, -1 dynamic). */
export type MlflowField =
  | { kind: 'column'; name: string; type: string; optional: boolean }
  | { kind: 'tensor'; name: string; dtype: string; shape: number[] };

const bad = (file: string, field: string, expected: string): never => {
  throw new CaliperError('CALIPER_INVALID_INPUT', `${file}: ${field}: ${expected}`);
};

/** Reads PATH (an MLflow model folder, or its MLmodel file) and checks that it has the ONNX flavour. */
export function readMlflowModel(path: string): MlflowModel {
  const given = resolve(path);
  const file = existsSync(given) && statSync(given).isDirectory() ? join(given, 'MLmodel') : given;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CaliperError(
      'CALIPER_NOT_FOUND',
      `${path}: no MLmodel file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); expected an MLflow model folder`,
    );
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (error) {
    throw new CaliperError('CALIPER_INVALID_INPUT', `${file}: not YAML (${(error as Error).message.split('\n')[0]})`);
  }
  const record = (value: unknown): Record<string, unknown> | undefined =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  const root = record(doc) ?? bad(file, 'MLmodel', 'expected a mapping');
  const flavors = record(root.flavors) ?? bad(file, 'flavors', 'expected a mapping of flavours');
  const onnx =
    record(flavors.onnx) ??
    bad(
      file,
      'flavors.onnx',
      `this model has no ONNX flavour (flavours: ${Object.keys(flavors).join(', ') || 'none'}); save it with mlflow.onnx`,
    );
  const data =
    typeof onnx.data === 'string' && onnx.data
      ? onnx.data
      : bad(file, 'flavors.onnx.data', 'expected the ONNX file name');
  const dir = dirname(file);
  const onnxFile = resolve(dir, data);
  if (!existsSync(onnxFile))
    throw new CaliperError('CALIPER_NOT_FOUND', `${file}: flavors.onnx.data: ${data} does not exist in ${dir}`);
  const model: MlflowModel = { dir, onnxFile, tags: {} };
  for (const key of ['run_id', 'model_uuid', 'mlflow_version', 'utc_time_created', 'artifact_path']) {
    if (typeof root[key] === 'string' || typeof root[key] === 'number') model.tags[`mlflow.${key}`] = String(root[key]);
  }
  const signature = record(root.signature);
  if (signature?.inputs !== undefined && signature.inputs !== null) {
    let inputs: unknown;
    try {
      inputs = typeof signature.inputs === 'string' ? JSON.parse(signature.inputs) : signature.inputs;
    } catch {
      bad(file, 'signature.inputs', 'expected a JSON list of columns or tensors');
    }
    if (!Array.isArray(inputs)) bad(file, 'signature.inputs', 'expected a JSON list of columns or tensors');
    model.inputs = (inputs as unknown[]).map((raw, i): MlflowField => {
      const field = record(raw) ?? bad(file, `signature.inputs[${i}]`, 'expected an object');
      const name = typeof field.name === 'string' ? field.name : undefined;
      if (field.type === 'tensor') {
        const spec =
          record(field['tensor-spec']) ?? bad(file, `signature.inputs[${i}].tensor-spec`, 'expected dtype and shape');
        const shape =
          Array.isArray(spec.shape) && spec.shape.every((d) => Number.isInteger(d))
            ? (spec.shape as number[])
            : bad(file, `signature.inputs[${i}].tensor-spec.shape`, 'expected a list of integers');
        return {
          kind: 'tensor',
          name: name ?? bad(file, `signature.inputs[${i}].name`, 'expected the tensor name'),
          dtype: String(spec.dtype),
          shape,
        };
      }
      if (typeof field.type !== 'string')
        bad(file, `signature.inputs[${i}].type`, 'expected a column type or "tensor"');
      return {
        kind: 'column',
        name: name ?? bad(file, `signature.inputs[${i}].name`, 'expected the column name'),
        type: String(field.type),
        optional: field.optional === true || field.required === false,
      };
    });
  }
  return model;
}

/** ONNX tensor element types model.yaml's preprocess can build, by their numpy names as MLflow writes them. */
const DTYPES: Record<string, string> = {
  float32: 'float32',
  float64: 'float64',
  int8: 'int8',
  uint8: 'uint8',
  int16: 'int16',
  uint16: 'uint16',
  int32: 'int32',
  uint32: 'uint32',
  int64: 'int64',
  uint64: 'uint64',
  bool: 'bool',
  str: 'string',
  object: 'string',
};
const COLUMN_TYPES: Record<string, 'number' | 'integer'> = {
  double: 'number',
  float: 'number',
  long: 'integer',
  integer: 'integer',
};

/** Where each model input comes from, as the ONNX file declares them (name, element type, shape). */
export interface OnnxInputShape {
  name: string;
  type: string;
  shape: number[];
}

/**
 * The request schema and preprocess a model.yaml needs, built from the MLflow signature: a tensor input
 * becomes an array field (one per tensor) passed through as that tensor; named numeric columns become
 * number fields stacked in order into the model's one input tensor.
 */
export function signatureConfig(
  model: MlflowModel,
  onnxInputs: OnnxInputShape[],
  file: string,
): { inputs: Record<string, unknown>; preprocess: unknown } {
  const fields =
    model.inputs ??
    bad(file, 'signature', 'MLmodel has no signature; pass --config model.yaml to describe the request');
  const tensors = fields.filter((f) => f.kind === 'tensor');
  if (tensors.length === fields.length) {
    const inputs: Record<string, unknown> = {};
    const preprocess = tensors.map((t) => {
      const dtype =
        DTYPES[t.dtype] ??
        bad(
          file,
          `signature.inputs.${t.name}`,
          `tensor type ${t.dtype} has no model.yaml form; pass --config model.yaml`,
        );
      const row = t.shape.slice(1);
      if (t.shape[0] !== -1 || row.some((d) => d < 1))
        bad(
          file,
          `signature.inputs.${t.name}`,
          `shape [${t.shape.join(', ')}]: expected a dynamic batch dimension first and fixed dimensions after it; pass --config model.yaml`,
        );
      const width = row.reduce((a, b) => a * b, 1);
      if (dtype === 'string') {
        if (row.length > 0)
          bad(
            file,
            `signature.inputs.${t.name}`,
            'string tensors wider than one value per row need --config model.yaml',
          );
        inputs[t.name] = { type: 'string' };
        return { tensor: t.name, dtype, columns: [{ identity: t.name }], shape: [] };
      }
      inputs[t.name] =
        row.length === 0
          ? { type: 'number' }
          : { type: 'array', items: dtype.startsWith('float') ? 'number' : 'integer', length: width };
      return {
        tensor: t.name,
        dtype,
        columns: [{ identity: t.name }],
        ...(row.length === 0 ? { shape: [] } : row.length > 1 ? { shape: row } : {}),
      };
    });
    return { inputs, preprocess: preprocess.length === 1 ? preprocess[0] : { tensors: preprocess } };
  }
  if (tensors.length > 0) bad(file, 'signature.inputs', 'mixes columns and tensors; pass --config model.yaml');
  const onnxInput =
    onnxInputs.length === 1
      ? onnxInputs[0]!
      : bad(
          file,
          'signature.inputs',
          `named columns map onto one model input, but the model takes ${onnxInputs.length} (${onnxInputs.map((i) => i.name).join(', ')}); pass --config model.yaml`,
        );
  const inputs: Record<string, unknown> = {};
  for (const f of fields) {
    if (f.kind !== 'column') continue;
    const type =
      COLUMN_TYPES[f.type] ??
      bad(
        file,
        `signature.inputs.${f.name}`,
        `column type ${f.type} cannot be stacked into the ${onnxInput.type} tensor ${onnxInput.name}; pass --config model.yaml`,
      );
    inputs[f.name] = { type, ...(f.optional ? { required: false } : {}) };
  }
  return {
    inputs,
    preprocess: {
      tensor: onnxInput.name,
      dtype: DTYPES[onnxInput.type] ?? onnxInput.type,
      columns: fields.map((f) => ({ identity: f.name })),
    },
  };
}

/**
 * model.yaml for an MLflow model: the given one (if any) wins field by field; inputs and preprocess come
 * from the MLflow signature where it has none, and each model output is returned under its own name when it
 * says nothing about postprocess.
 */
export function mlflowModelYaml(
  name: string,
  model: MlflowModel,
  onnxInputs: OnnxInputShape[],
  outputs: string[],
  given?: { text: string; file: string },
): string {
  const doc = given ? parseDocument(given.text) : parseDocument('{}');
  const file = given?.file ?? join(model.dir, 'MLmodel');
  if (!doc.has('name')) doc.set('name', name);
  if (!doc.has('inputs')) {
    if (doc.has('preprocess'))
      bad(
        file,
        'inputs',
        'model.yaml has a preprocess but no inputs; give both, or neither to use the MLflow signature',
      );
    const built = signatureConfig(model, onnxInputs, join(model.dir, 'MLmodel'));
    doc.set('inputs', built.inputs);
    doc.set('preprocess', built.preprocess);
  }
  if (!doc.has('postprocess')) doc.set('postprocess', Object.fromEntries(outputs.map((o) => [o, { output: o }])));
  return given ? doc.toString() : stringify(doc.toJSON());
}

export interface MlflowImportRequest {
  /** The MLflow model folder (or its MLmodel file). */
  path: string;
  name: string;
  /** A model.yaml whose fields win over what the MLflow signature gives; default: model.yaml beside MLmodel, if any. */
  configFile?: string;
  description?: string;
  tags?: Record<string, string>;
  actor?: string;
}

/**
 * Registers an MLflow model saved with the ONNX flavour as the next version of NAME: the ONNX file it
 * names, a model.yaml built from its signature (or given), and its run id and model uuid as mlflow.* tags.
 * The registry's own checks apply: ONNX Runtime must load it and model.yaml must match it.
 */
export async function importMlflowModel(
  registry: ModelRegistry,
  request: MlflowImportRequest,
): Promise<RegisteredVersion> {
  const model = readMlflowModel(request.path);
  const besides = join(model.dir, 'model.yaml');
  const configFile = request.configFile ?? (existsSync(besides) ? besides : undefined);
  let given: { text: string; file: string } | undefined;
  if (configFile !== undefined) {
    try {
      given = { text: readFileSync(configFile, 'utf8'), file: configFile };
    } catch (error) {
      throw new CaliperError(
        'CALIPER_NOT_FOUND',
        `${configFile}: cannot read model.yaml (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
  }
  let session: OnnxSession;
  try {
    session = await OnnxSession.create({
      modelPath: model.onnxFile,
      intraOpThreads: 1,
      interOpThreads: 1,
      graphLevel: 'basic',
    });
  } catch (error) {
    throw new CaliperError(
      'CALIPER_MODEL_LOAD_FAILED',
      `${model.onnxFile}: not a loadable ONNX model: ${(error as Error).message.split('\n')[0]}`,
    );
  }
  const { inputs, outputs } = session.signature;
  await session.release();
  const yaml = mlflowModelYaml(
    request.name,
    model,
    inputs.map((i) => ({ name: i.name, type: i.type, shape: i.shape })),
    outputs.filter((o) => o.isTensor !== false).map((o) => o.name),
    given,
  );
  const scratch = mkdtempSync(join(tmpdir(), 'caliper-mlflow-'));
  try {
    // Relative paths in a given model.yaml keep resolving beside it.
    const written = given
      ? join(dirname(resolve(given.file)), `.caliper-mlflow-${process.pid}-model.yaml`)
      : join(scratch, 'model.yaml');
    writeFileSync(written, yaml);
    try {
      return await registry.register({
        file: model.onnxFile,
        configFile: written,
        name: request.name,
        tags: { ...model.tags, ...request.tags },
        ...(request.description !== undefined ? { description: request.description } : {}),
        ...(request.actor !== undefined ? { actor: request.actor } : {}),
      });
    } finally {
      if (given) rmSync(written, { force: true });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
