import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { listModelVersions, readModelConfig, readVersionConfig } from '../config/model-config-file.ts';
import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import { featureInputs } from '../features/feature-config.ts';
import { Preprocessor } from '../pipeline/preprocess.ts';
import { RequestSchema } from '../pipeline/request-schema.ts';
import { v2DatatypeOf } from '../protocol/datatypes.ts';

export type BenchProtocol = 'predict' | 'v2' | 'grpc';
export const BENCH_PROTOCOLS: readonly BenchProtocol[] = ['predict', 'v2', 'grpc'];

/** The request documents a benchmark cycles through, as parsed JSON (one per line of a JSONL file). */
export interface RequestData {
  source: string;
  documents: unknown[];
}

export const SAMPLE_REQUEST_FILE = 'sample-request.json';

const benchError = (message: string): CaliperError => new CaliperError('CALIPER_INVALID_INPUT', message);

/** Reads a JSONL file: one request document per non-empty line. Errors name the file and line. */
export function readRequestsFile(file: string): RequestData {
  const path = resolve(file);
  if (!existsSync(path)) throw benchError(`--data ${file}: file not found`);
  const documents: unknown[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        documents.push(JSON.parse(line));
      } catch (error) {
        throw benchError(
          `${file}:${i + 1}: not a JSON document (${(error as Error).message}); --data expects one request per line (JSONL)`,
        );
      }
    });
  if (documents.length === 0) throw benchError(`${file}: no requests (expected one JSON request per line)`);
  return { source: path, documents };
}

/** The model folder's sample-request.json: one request object, or a list of them. */
export function readSampleRequests(modelDir: string): RequestData {
  const file = join(resolve(modelDir), SAMPLE_REQUEST_FILE);
  if (!existsSync(file)) throw benchError(`${modelDir}: no ${SAMPLE_REQUEST_FILE}; pass --data REQUESTS.jsonl`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw benchError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  const documents = Array.isArray(parsed) ? parsed : [parsed];
  if (documents.length === 0) throw benchError(`${file}: an empty list; expected a request object`);
  return { source: file, documents };
}

export const isV2Request = (doc: unknown): boolean =>
  typeof doc === 'object' && doc !== null && Array.isArray((doc as { inputs?: unknown }).inputs);

/**
 * Turns /predict request objects into Open Inference Protocol requests by running them through the model's
 * own preprocess (model.yaml of the version served by default), so one sample file serves both protocols.
 * Documents that already are v2 requests pass through. Features a model looks up from a store take their
 * declared defaults: a v2 request carries finished tensors, so nothing is looked up for it.
 */
export function toV2Requests(data: RequestData, modelDir: string | undefined): RequestData {
  if (data.documents.every(isV2Request)) return data;
  if (!modelDir) {
    throw benchError(
      `${data.source}: these are /predict requests; --protocol v2 needs v2 infer requests ({"inputs": [...]}) or a model folder to preprocess them`,
    );
  }
  const config = servedModelConfig(modelDir);
  const featureDefaults = featureDefaultsOf(config);
  const schema = new RequestSchema(config);
  const preprocessor = new Preprocessor({ ...config, inputs: [...config.inputs, ...featureInputs(config.features)] });
  const documents = data.documents.map((doc, i) => {
    if (isV2Request(doc)) return doc;
    const row = { ...featureDefaults, ...schema.validate(doc, `${data.source} request ${i + 1}: `) };
    const tensors = preprocessor.run([row], () => `${data.source} request ${i + 1}: `);
    return {
      inputs: Object.entries(tensors).map(([name, tensor]) => ({
        name,
        shape: tensor.dims,
        datatype: v2DatatypeOf(tensor.type),
        data: Array.from(tensor.data as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v)),
      })),
    };
  });
  return { source: data.source, documents };
}

/** The config of the version a server answers with by default: the highest version (its own model.yaml if it has one). */
export function servedModelConfig(modelDir: string): ModelConfig {
  const config = readModelConfig(modelDir);
  const versions = listModelVersions(config.dir);
  return versions.length > 0 ? readVersionConfig(config, versions[versions.length - 1]!) : config;
}

function featureDefaultsOf(config: ModelConfig): Record<string, unknown> {
  return Object.fromEntries(featureInputs(config.features).map((field) => [field.name, field.default]));
}
