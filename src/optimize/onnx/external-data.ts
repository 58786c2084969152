import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path';
import type { GraphProto, ModelProto, TensorProto } from './onnx-types.ts';
import { withRawData } from './tensor-values.ts';

/*
 * ONNX external data: a tensor with data_location = EXTERNAL keeps its bytes in a file next to the model;
 * external_data entries give `location` (relative path), `offset` and `length` in bytes.
 */

const EXTERNAL = 1;

/** Every tensor a model holds: initializers, Constant/attribute tensors, sparse values, in subgraphs too. */
export function* modelTensors(model: ModelProto): Generator<TensorProto> {
  if (model.graph) yield* graphTensors(model.graph);
  for (const fn of model.functions ?? []) {
    for (const node of fn.node ?? []) for (const attr of node.attribute ?? []) yield* attributeTensors(attr);
  }
}

function* attributeTensors(
  attr: NonNullable<NonNullable<GraphProto['node']>[number]['attribute']>[number],
): Generator<TensorProto> {
  if (attr.t) yield attr.t;
  for (const t of attr.tensors ?? []) yield t;
  if (attr.sparseTensor?.values) yield attr.sparseTensor.values;
  if (attr.g) yield* graphTensors(attr.g);
  for (const g of attr.graphs ?? []) yield* graphTensors(g);
}

function* graphTensors(graph: GraphProto): Generator<TensorProto> {
  for (const t of graph.initializer ?? []) yield t;
  for (const s of graph.sparseInitializer ?? []) {
    if (s.values) yield s.values;
    if (s.indices) yield s.indices;
  }
  for (const node of graph.node ?? []) for (const attr of node.attribute ?? []) yield* attributeTensors(attr);
}

function externalField(tensor: TensorProto, key: string): string | undefined {
  return tensor.externalData?.find((e) => e.key === key)?.value;
}

/** Reads every external tensor's bytes into raw_data (in place). Locations must stay inside baseDir. */
export function loadExternalData(model: ModelProto, baseDir: string): void {
  const handles = new Map<string, number>();
  try {
    for (const tensor of modelTensors(model)) {
      if (tensor.dataLocation !== EXTERNAL) continue;
      const location = externalField(tensor, 'location');
      if (!location) throw new Error(`tensor ${tensor.name ?? ''} is external but has no location`);
      if (isAbsolute(location) || normalize(location).split(sep).includes('..')) {
        throw new Error(`tensor ${tensor.name ?? ''}: external data location ${location} escapes the model directory`);
      }
      const path = join(baseDir, location);
      let fd = handles.get(path);
      if (fd === undefined) {
        fd = openSync(path, 'r');
        handles.set(path, fd);
      }
      const offset = Number(externalField(tensor, 'offset') ?? 0);
      const lengthField = externalField(tensor, 'length');
      let length: number;
      if (lengthField !== undefined) {
        length = Number(lengthField);
      } else {
        length = readFileLength(fd) - offset;
      }
      const bytes = new Uint8Array(length);
      const read = readSync(fd, bytes, 0, length, offset);
      if (read !== length)
        throw new Error(
          `tensor ${tensor.name ?? ''}: ${path} holds ${read} bytes at offset ${offset}, expected ${length}`,
        );
      tensor.rawData = bytes;
      delete tensor.externalData;
      delete tensor.dataLocation;
    }
  } finally {
    for (const fd of handles.values()) closeSync(fd);
  }
}

function readFileLength(fd: number): number {
  const probe = new Uint8Array(1 << 16);
  let total = 0;
  for (;;) {
    const n = readSync(fd, probe, 0, probe.length, total);
    if (n === 0) return total;
    total += n;
  }
}

export interface ExternalDataOptions {
  /** File name for the data, relative to the model's directory (default: `<model file>.data`). */
  location?: string;
  /** Initializers with at least this many bytes go to the data file (default 1024). */
  thresholdBytes?: number;
}

/**
 * Returns a copy of the model whose large initializers point into one data file, and writes that file.
 * Offsets are aligned to 4 KiB so the runtime may memory-map them.
 */
export function externalizeInitializers(
  model: ModelProto,
  modelPath: string,
  options: ExternalDataOptions = {},
): ModelProto {
  const location = options.location ?? `${basename(modelPath)}.data`;
  const threshold = options.thresholdBytes ?? 1024;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const initializers = (model.graph?.initializer ?? []).map((original) => {
    const tensor = withRawData(original);
    const bytes = tensor.rawData;
    if (!bytes || bytes.length < threshold) return tensor;
    const padding = (4096 - (offset % 4096)) % 4096;
    if (padding) chunks.push(new Uint8Array(padding));
    offset += padding;
    chunks.push(bytes);
    const entry: TensorProto = {
      ...tensor,
      dataLocation: EXTERNAL,
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(bytes.length) },
      ],
    };
    delete entry.rawData;
    offset += bytes.length;
    return entry;
  });
  writeFileSync(join(dirname(modelPath), location), Buffer.concat(chunks));
  return { ...model, graph: { ...model.graph, initializer: initializers } };
}
