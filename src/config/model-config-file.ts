import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type * as Yaml from 'yaml';
import { CaliperError } from '../errors.ts';
import { parseModelConfig, type ModelConfig } from './model-config.ts';
import { requireBundledDependency } from '../system/bundled-dependency.ts';

/** yaml, from the built package's one-file bundle of it where there is one (every command reads a model.yaml). */
const { parseDocument } = requireBundledDependency<typeof Yaml>('yaml');

export const MODEL_CONFIG_FILE = 'model.yaml';
export const MODEL_FILE = 'model.onnx';

/** Reads and validates DIR/model.yaml. */
export function readModelConfig(dir: string): ModelConfig {
  const folder = resolve(dir);
  const file = join(folder, MODEL_CONFIG_FILE);
  if (!existsSync(file))
    throw new CaliperError(
      'CALIPER_CONFIG_INVALID',
      `${file}: not found (a model folder holds model.yaml and version folders 1/, 2/, …)`,
    );
  return parseModelConfigText(readFileSync(file, 'utf8'), file, folder);
}

/** Parses model.yaml text; YAML syntax errors name the file and line. */
export function parseModelConfigText(text: string, file: string, dir: string): ModelConfig {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    const line = first.linePos?.[0];
    throw new CaliperError(
      'CALIPER_CONFIG_INVALID',
      `${file}${line ? `:${line.line}:${line.col}` : ''}: invalid YAML: ${first.message.split('\n')[0]}`,
    );
  }
  return parseModelConfig(document.toJS(), file, dir);
}

/** The numbered version folders of a model folder that hold a model.onnx, ascending. */
export function listModelVersions(dir: string): number[] {
  return readdirSync(dir)
    .filter((entry) => /^[1-9][0-9]*$/.test(entry))
    .filter((entry) => statSync(join(dir, entry)).isDirectory() && existsSync(join(dir, entry, MODEL_FILE)))
    .map(Number)
    .sort((a, b) => a - b);
}

/** True when DIR is a model folder (it holds model.yaml). */
export function isModelFolder(dir: string): boolean {
  return existsSync(join(dir, MODEL_CONFIG_FILE));
}

/**
 * The config a version is served with: VERSION/model.yaml when the version folder holds one (a version
 * whose inputs, features or preprocess differ from the others'), else the model folder's. A version's
 * file keeps the model's name; the model folder's `versions` policy decides what is loaded.
 */
export function readVersionConfig(model: ModelConfig, version: number): ModelConfig {
  const file = join(model.dir, String(version), MODEL_CONFIG_FILE);
  if (!existsSync(file)) return model;
  const config = parseModelConfigText(readFileSync(file, 'utf8'), file, model.dir);
  if (config.name !== model.name)
    throw new CaliperError(
      'CALIPER_CONFIG_INVALID',
      `${file}: name: expected "${model.name}" (the model folder's name), got "${config.name}"`,
    );
  return config;
}
