import { existsSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import type { ModelConfig } from '../config/model-config.ts';
import { parseModelConfigText } from '../config/model-config-file.ts';
import { CaliperError } from '../errors.ts';
import { featureInputs } from '../features/feature-config.ts';
import { Preprocessor } from '../pipeline/preprocess.ts';
import { checkConfigAgainstSignature } from '../pipeline/signature-check.ts';
import type { ModelSignature } from '../runtime/model-signature.ts';
import { OnnxSession } from '../runtime/onnx-session.ts';
import { describeFeeds, warmUpFeeds } from '../runtime/warm-up-feeds.ts';

/** The registered name wins over model.yaml's own `name`. */
export function configForName(text: string, file: string, dir: string, name: string): ModelConfig {
  const config = parseModelConfigText(text, file, dir);
  return { ...config, name };
}

/** The tag that maps a version's bundled files (paths relative to model.yaml) to their artifacts' sha256. */
export const BUNDLED_FILES_TAG = 'caliper.files';

/**
 * The folder model.yaml's relative paths resolve in: its own folder, or the model folder when it is a version
 * folder's model.yaml (NAME/3/model.yaml beside NAME/model.yaml), as serving a folder resolves them.
 */
export function modelFolderOf(configFile: string): string {
  const dir = dirname(configFile);
  const parent = dirname(dir);
  return /^\d+$/.test(basename(dir)) && existsSync(join(parent, 'model.yaml')) ? parent : dir;
}

/** The sha256 of every file bundled with a version (feature files, hook modules), by relative path. */
export function bundledArtifacts(tags: Record<string, string>): Record<string, string> {
  const raw = tags[BUNDLED_FILES_TAG];
  return raw ? (JSON.parse(raw) as Record<string, string>) : {};
}

/**
 * Files model.yaml names by a path relative to its own folder — an in-memory feature store's source file and a hook
 * module — which registration stores beside the model so the version serves on any machine. (A hook module is
 * stored alone: it may import packages, not sibling files.)
 */
export function bundledFiles(config: ModelConfig): string[] {
  const files: string[] = [];
  const store = config.features?.store;
  if (store?.kind === 'memory' && !isAbsolute(store.source)) files.push(store.source);
  if (config.hooks !== undefined && !isAbsolute(config.hooks)) files.push(config.hooks);
  return files.map((f) => normalize(f));
}

/**
 * One inference on inputs synthesized from the signature (zeros, one row, the widths model.yaml builds), as a
 * server's warm-up runs it: a model that loads but cannot run (a Reshape to an impossible shape, a Gather with
 * out-of-range constant indices) is refused here with ONNX Runtime's reason, not after it is promoted.
 */
function checkFirstInference(session: OnnxSession, preprocessor: Preprocessor, shownAs: string): void {
  const rowShapeOf = (input: string) => preprocessor.builders.find((b) => b.spec.name === input)?.rowShape;
  const feeds = warmUpFeeds(session.signature, 1, rowShapeOf);
  try {
    session.run(feeds);
  } catch (error) {
    throw new CaliperError(
      'CALIPER_MODEL_LOAD_FAILED',
      `${shownAs}: ONNX Runtime loads the model but its first inference fails (zero inputs ${describeFeeds(feeds)}): ${(error as Error).message}`,
    );
  }
}

/**
 * What registration demands before a version exists: ONNX Runtime loads the file, model.yaml builds exactly
 * the tensors the model takes and reads outputs it has, and one inference runs.
 */
export async function checkRegistration(
  modelFile: string,
  shownAs: string,
  configText: string,
  configFile: string,
  name: string,
): Promise<ModelSignature> {
  const config = configForName(configText, configFile, modelFolderOf(configFile), name);
  let session: OnnxSession;
  try {
    session = await OnnxSession.create({
      modelPath: modelFile,
      intraOpThreads: 1,
      interOpThreads: 1,
      graphLevel: 'basic',
    });
  } catch (error) {
    const reason = ((error as Error).message.split('\n')[0] ?? '').replace(/^Load model from \S+ failed:\s*/, '');
    throw new CaliperError(
      'CALIPER_MODEL_LOAD_FAILED',
      `${shownAs}: not a loadable ONNX model (corrupt, truncated or not ONNX): ${reason}`,
    );
  }
  try {
    // Looked-up feature fields are columns too, exactly as ModelVersion.load builds them.
    const preprocessor = new Preprocessor({ ...config, inputs: [...config.inputs, ...featureInputs(config.features)] });
    checkConfigAgainstSignature(config, session.signature, preprocessor, shownAs);
    checkFirstInference(session, preprocessor, shownAs);
    return session.signature;
  } finally {
    await session.release();
  }
}
