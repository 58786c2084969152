/**
 * The model an optimization starts from when it is named as a served model: a model folder (model.yaml
 * + version folders) or a registry URI. Either way the command gets the ONNX file, the parsed model.yaml
 * (whose pipeline turns request rows into tensors) and the model.yaml text to register the result with.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listModelVersions, MODEL_FILE, readModelConfig, readVersionConfig } from '../config/model-config-file.ts';
import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import { isModelUri } from '../registry/model-uri.ts';
import { resolveModelUri } from '../registry/uri-resolver.ts';

export interface ModelSource {
  /** How the user named it (folder or URI), for reports and the `optimized_from` tag. */
  name: string;
  /** `models:/name/3` or `DIR/3`. */
  from: string;
  modelPath: string;
  config: ModelConfig;
  version: number;
  /** model.yaml text the version is served with. */
  configText: string;
}

/** The version a model folder serves by default: its version policy's highest available version. */
function servedVersion(config: ModelConfig): number {
  const available = listModelVersions(config.dir);
  const policy = config.versionPolicy;
  const candidates = policy.kind === 'specific' ? available.filter((v) => policy.versions.includes(v)) : available;
  if (candidates.length === 0)
    throw new CaliperError(
      'CALIPER_NOT_FOUND',
      `${config.dir}: no version folder with ${MODEL_FILE} (expected ${config.dir}/1/${MODEL_FILE})`,
    );
  return candidates[candidates.length - 1]!;
}

/** Resolves `--model DIR|DIR/VERSION|models:/URI`. */
export async function resolveModelSource(spec: string, registry?: string): Promise<ModelSource> {
  if (isModelUri(spec)) {
    const resolved = await resolveModelUri(spec, registry);
    return {
      name: spec,
      from: `models:/${resolved.name}/${resolved.version}`,
      modelPath: resolved.modelPath,
      config: resolved.config,
      version: resolved.version,
      configText: resolved.configText,
    };
  }
  if (!existsSync(spec))
    throw new CaliperError(
      'CALIPER_NOT_FOUND',
      `--model: ${spec} does not exist (expected a model folder with model.yaml, or models:/NAME/VERSION)`,
    );
  // DIR/3 names one version of a model folder.
  const versionFolder = /^(.*?)[/\\]+([1-9][0-9]*)[/\\]*$/.exec(spec);
  const folder = versionFolder && existsSync(join(versionFolder[1]!, 'model.yaml')) ? versionFolder[1]! : spec;
  const base = readModelConfig(folder);
  const version = versionFolder && folder !== spec ? Number(versionFolder[2]) : servedVersion(base);
  const modelPath = join(base.dir, String(version), MODEL_FILE);
  if (!existsSync(modelPath)) throw new CaliperError('CALIPER_NOT_FOUND', `--model: ${modelPath} does not exist`);
  const config = readVersionConfig(base, version);
  return {
    name: spec,
    from: join(folder, String(version)),
    modelPath,
    config,
    version,
    configText: readFileSync(config.file, 'utf8'),
  };
}
