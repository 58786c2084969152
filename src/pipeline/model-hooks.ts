import { MODEL_FOLDER_PATHS, resolveModelFolderPath } from '../config/model-folder-path.ts';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { CaliperError } from '../errors.ts';
import type { TensorMap } from '../runtime/tensor.ts';
import type { Prediction } from './postprocess.ts';
import type { RequestRow } from './request-schema.ts';

/**
 * The escape hatch for custom pre/postprocessing: a TypeScript (or JavaScript) module named by model.yaml's
 * `hooks`, exporting any of these functions.
 */
export interface ModelHooks {
  /** Runs after validation, before the preprocess columns; may derive or rewrite fields. */
  preprocess?(row: RequestRow): RequestRow;
  /** Runs after the postprocess fields; may add, change or remove fields. */
  postprocess?(prediction: Prediction, context: { outputs: TensorMap; row: number; request: RequestRow }): Prediction;
  /** Extra request fields the hook accepts besides model.yaml's inputs. */
  extraFields?: string[];
}

const TYPESCRIPT_FILE = /\.[cm]?tsx?$/;

/** tsx's loader, scoped to the one import, and only fetched when a hook needs it. */
async function importThroughTsx(url: string): Promise<Record<string, unknown>> {
  const { tsImport } = await import('tsx/esm/api');
  return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
}

/**
 * Imports a hook module from wherever it lies, with or without a package.json above it. TypeScript goes through
 * tsx; JavaScript is imported by Node itself, except a `.js` file written as an ES module where Node takes it for
 * CommonJS (no `"type": "module"` above it): depending on the Node version and on loaders already registered that
 * fails as a SyntaxError or as a require(esm) cycle, and tsx, which reads either syntax, has the second try.
 */
async function importHookModule(file: string, url: string): Promise<Record<string, unknown>> {
  if (TYPESCRIPT_FILE.test(file)) return commonJsExports(await importThroughTsx(url));
  try {
    return commonJsExports((await import(url)) as Record<string, unknown>);
  } catch (error) {
    if (!file.endsWith('.js')) throw error;
    return commonJsExports(await importThroughTsx(url));
  }
}

/** A CommonJS module (or one a loader compiled to CommonJS) whose names Node could not list arrives as `default`. */
function commonJsExports(module: Record<string, unknown>): Record<string, unknown> {
  const named = module.preprocess !== undefined || module.postprocess !== undefined;
  const fallback = module.default;
  return !named && typeof fallback === 'object' && fallback !== null ? (fallback as Record<string, unknown>) : module;
}

export async function loadModelHooks(modelDir: string, hooksPath: string, configFile: string): Promise<ModelHooks> {
  // Checked again where it is opened: the file may have become a link out of the folder since model.yaml was read.
  const file = resolveModelFolderPath(modelDir, hooksPath, MODEL_FOLDER_PATHS.hooks, configFile);
  let module: Record<string, unknown>;
  try {
    // The module cache is keyed by URL: naming the source's hash makes a reload see an edited hook module.
    const url = new URL(pathToFileURL(file).href);
    url.searchParams.set('source', createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16));
    module = await importHookModule(file, url.href);
  } catch (error) {
    throw new CaliperError(
      'CALIPER_MODEL_LOAD_FAILED',
      `${configFile}: hooks: cannot load ${file}: ${(error as Error).message}`,
    );
  }
  const hooks: ModelHooks = {};
  for (const name of ['preprocess', 'postprocess'] as const) {
    const fn = module[name];
    if (fn === undefined) continue;
    if (typeof fn !== 'function')
      throw new CaliperError(
        'CALIPER_MODEL_LOAD_FAILED',
        `${configFile}: hooks: ${file} exports ${name} but it is not a function`,
      );
    (hooks as Record<string, unknown>)[name] = fn;
  }
  if (Array.isArray(module.extraFields)) hooks.extraFields = module.extraFields.map(String);
  if (!hooks.preprocess && !hooks.postprocess)
    throw new CaliperError(
      'CALIPER_MODEL_LOAD_FAILED',
      `${configFile}: hooks: ${file} exports neither preprocess nor postprocess`,
    );
  return hooks;
}
