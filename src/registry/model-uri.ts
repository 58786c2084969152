import { CaliperError } from '../errors.ts';
import { checkAlias, checkModelName, isStage, parseStage, type Stage } from './model-stage.ts';

export type VersionSelector =
  | { kind: 'version'; version: number }
  | { kind: 'stage'; stage: Stage }
  | { kind: 'alias'; alias: string }
  | { kind: 'latest' };

export interface ModelUri {
  name: string;
  selector: VersionSelector;
}

export const MODEL_URI_PREFIX = 'models:/';

export function isModelUri(value: string): boolean {
  return value.startsWith('models:');
}

const FORMS =
  'models:/NAME/VERSION, models:/NAME/STAGE (None, Staging, Production, Archived), models:/NAME@ALIAS or models:/NAME/latest';

/** Parses models:/name/3, models:/name/Production, models:/name@champion and models:/name/latest. */
export function parseModelUri(uri: string): ModelUri {
  const bad = (why: string): never => {
    throw new CaliperError('CALIPER_INVALID_INPUT', `${uri}: ${why} (expected ${FORMS})`);
  };
  if (!uri.startsWith(MODEL_URI_PREFIX)) bad('not a model URI');
  const rest = uri.slice(MODEL_URI_PREFIX.length);
  const at = rest.indexOf('@');
  if (at >= 0) {
    const name = rest.slice(0, at);
    if (!name || name.includes('/')) bad('expected NAME@ALIAS');
    return {
      name: checkModelName(name, `${uri}: name`),
      selector: { kind: 'alias', alias: checkAlias(rest.slice(at + 1), `${uri}: alias`) },
    };
  }
  const parts = rest.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) bad('expected NAME/VERSION, NAME/STAGE or NAME/latest');
  const name = checkModelName(parts[0]!, `${uri}: name`);
  const which = parts[1]!;
  if (/^[0-9]+$/.test(which)) {
    const version = Number(which);
    if (version < 1) bad('versions are numbered from 1');
    return { name, selector: { kind: 'version', version } };
  }
  if (which.toLowerCase() === 'latest') return { name, selector: { kind: 'latest' } };
  if (isStage(which)) return { name, selector: { kind: 'stage', stage: parseStage(which) } };
  return bad(`"${which}" is neither a version number, a stage nor "latest"`);
}

export function formatModelUri(uri: ModelUri): string {
  const s = uri.selector;
  switch (s.kind) {
    case 'version':
      return `${MODEL_URI_PREFIX}${uri.name}/${s.version}`;
    case 'stage':
      return `${MODEL_URI_PREFIX}${uri.name}/${s.stage}`;
    case 'alias':
      return `${MODEL_URI_PREFIX}${uri.name}@${s.alias}`;
    case 'latest':
      return `${MODEL_URI_PREFIX}${uri.name}/latest`;
  }
}

/** A target written without the models:/NAME part, as traffic policies store them: "3", "Staging", "@challenger", "latest". */
export function parseSelector(name: string, target: string): VersionSelector {
  const uri = target.startsWith('@') ? `${MODEL_URI_PREFIX}${name}${target}` : `${MODEL_URI_PREFIX}${name}/${target}`;
  return parseModelUri(uri).selector;
}

export function formatSelector(selector: VersionSelector): string {
  switch (selector.kind) {
    case 'version':
      return String(selector.version);
    case 'stage':
      return selector.stage;
    case 'alias':
      return `@${selector.alias}`;
    case 'latest':
      return 'latest';
  }
}
