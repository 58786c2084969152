import type { ModelConfig } from '../config/model-config.ts';
import { ModelRegistry, type RegisteredVersion } from './model-registry.ts';
import { parseModelUri } from './model-uri.ts';

/** A model URI resolved to files on disk: what serve, batch or quantize need to use a registered version. */
export interface ResolvedModel {
  uri: string;
  name: string;
  version: number;
  /** The ONNX file in the artifact store, its sha256 checked. */
  modelPath: string;
  /** model.yaml as registered, and parsed (named as registered). */
  configText: string;
  config: ModelConfig;
  record: RegisteredVersion;
}

/**
 * Resolves models:/name/3, models:/name/Production, models:/name@alias or models:/name/latest against
 * the registry at `registry` (a folder or postgres:// URI; default: $CALIPER_REGISTRY, $CALIPER_HOME or ~/.caliper),
 * with artifacts from `artifacts` (a folder or s3:// URI; default $CALIPER_ARTIFACTS or the registry folder's).
 */
export async function resolveModelUri(
  uri: string,
  registryOption?: string,
  artifacts?: string,
): Promise<ResolvedModel> {
  const parsed = parseModelUri(uri);
  const registry = await ModelRegistry.connect({ registry: registryOption, artifacts });
  try {
    const record = await registry.resolve(parsed.name, parsed.selector);
    const modelPath = await registry.artifactPath(record);
    return {
      uri,
      name: record.name,
      version: record.version,
      modelPath,
      configText: record.config,
      config: await registry.servedConfigOf(record),
      record,
    };
  } finally {
    await registry.close();
  }
}
