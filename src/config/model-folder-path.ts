import { existsSync, realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { CaliperError } from '../errors.ts';

/**
 * Where a path named in model.yaml may point. Relative paths resolve in the model folder and must stay inside it,
 * after `..` is applied and after symbolic links are followed: a model folder (or a registered version) carries
 * everything it names, and a model.yaml cannot reach other files of the machine that serves it. `absolute` says
 * whether the field also takes an absolute path (an operator's file outside any model folder).
 */
export interface ModelFolderPathRule {
  /** The model.yaml field, e.g. "hooks" or "features.source", named in errors. */
  field: string;
  absolute: boolean;
}

/** The model.yaml path fields and whether each takes an absolute path (README "A model folder" says the same). */
export const MODEL_FOLDER_PATHS = {
  /** A hook module runs inside the server: only a file inside the model folder (registration bundles it). */
  hooks: { field: 'hooks', absolute: false },
  /** A feature table is data: inside the model folder, or an absolute path to a file the operator placed. */
  featuresSource: { field: 'features.source', absolute: true },
} as const satisfies Record<string, ModelFolderPathRule>;

const outside = (base: string, target: string): boolean => {
  const rel = relative(base, target);
  return rel === '..' || rel.startsWith('../') || rel.startsWith('..\\') || isAbsolute(rel);
};

/**
 * Checks a path model.yaml names against its rule and returns it resolved (absolute). Throws
 * CALIPER_CONFIG_INVALID naming `configFile`, the field and the reason: an absolute path where the field takes
 * none, a relative path that leaves `modelDir` (`../../elsewhere`), or an existing file or folder on the way that is
 * a symbolic link resolving outside `modelDir`. A path that does not exist yet is left to whoever opens it.
 */
export function resolveModelFolderPath(
  modelDir: string,
  value: string,
  rule: ModelFolderPathRule,
  configFile: string,
): string {
  const fail = (reason: string): never => {
    throw new CaliperError(
      'CALIPER_CONFIG_INVALID',
      `${configFile}: ${rule.field}: expected ${reason}, got ${JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value)}`,
    );
  };
  if (value.includes('\0')) fail('a path without NUL characters');
  if (isAbsolute(value)) {
    if (!rule.absolute)
      fail(`a path relative to the model folder ${modelDir} (an absolute path is not allowed for ${rule.field})`);
    return value;
  }
  const dir = resolve(modelDir);
  const target = resolve(dir, value);
  if (outside(dir, target)) fail(`a path inside the model folder ${dir} (it resolves to ${target}, outside it)`);
  if (existsSync(target) && existsSync(dir)) {
    const realDir = realpathSync(dir);
    const real = realpathSync(target);
    if (outside(realDir, real))
      fail(
        `a file inside the model folder ${dir} (it is reached through a symbolic link and resolves to ${real}, outside it)`,
      );
  }
  return target;
}
