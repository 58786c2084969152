import { dirname, isAbsolute } from 'node:path';
import type { ModelConfig } from '../config/model-config.ts';
import { parseModelConfigText } from '../config/model-config-file.ts';
import { CaliperError } from '../errors.ts';
import { featureInputs } from '../features/feature-config.ts';
import { Preprocessor } from '../pipeline/preprocess.ts';
import { checkConfigAgainstSignature } from '../pipeline/signature-check.ts';
import type { ModelSignature } from '../runtime/model-signature.ts';
import { OnnxSession } from '../runtime/onnx-session.ts';

/** The registered name wins over model.yaml's own `name`. */
export function configForName(text: string, file: string, dir: string, name: string): ModelConfig {
  const config = parseModelConfigText(text, file, dir);
  if (config.hooks !== undefined) {
    throw new CaliperError('CALIPER_CONFIG_INVALID', `${file}: hooks: registered models cannot use a hook module yet (serve the model folder instead)`);
  }
  const store = config.features?.store;
  if (store?.kind === 'memory' && !isAbsolute(store.source)) {
    // Only model.onnx and model.yaml are stored in the registry, so a relative feature file would not be found at serve time.
    throw new CaliperError('CALIPER_CONFIG_INVALID', `${file}: features.source: registered models need an absolute path to the feature file, or store: redis (got "${store.source}")`);
  }
  return { ...config, name };
}

/**
 * What registration demands before a version exists: ONNX Runtime loads the file, and model.yaml
 * builds exactly the tensors the model takes and reads outputs it has.
 */
export async function checkRegistration(modelFile: string, shownAs: string, configText: string, configFile: string, name: string): Promise<ModelSignature> {
  const config = configForName(configText, configFile, dirname(configFile), name);
  let session: OnnxSession;
  try {
    session = await OnnxSession.create({ modelPath: modelFile, intraOpThreads: 1, interOpThreads: 1, graphLevel: 'basic' });
  } catch (error) {
    const reason = ((error as Error).message.split('\n')[0] ?? '').replace(/^Load model from \S+ failed:\s*/, '');
    throw new CaliperError('CALIPER_MODEL_LOAD_FAILED', `${shownAs}: not a loadable ONNX model (corrupt, truncated or not ONNX): ${reason}`);
  }
  try {
    // Looked-up feature fields are columns too, exactly as ModelVersion.load builds them.
    const preprocessor = new Preprocessor({ ...config, inputs: [...config.inputs, ...featureInputs(config.features)] });
    checkConfigAgainstSignature(config, session.signature, preprocessor, shownAs);
    return session.signature;
  } finally {
    await session.release();
  }
}
