import { CaliperError } from '../errors.ts';

export const STAGES = ['None', 'Staging', 'Production', 'Archived'] as const;
export type Stage = (typeof STAGES)[number];

/** Accepts a stage in any letter case ("production" → "Production"). */
export function parseStage(value: string, field = 'stage'): Stage {
  const found = STAGES.find((s) => s.toLowerCase() === value.toLowerCase());
  if (!found)
    throw new CaliperError('CALIPER_INVALID_INPUT', `${field}: expected one of ${STAGES.join(', ')}, got "${value}"`);
  return found;
}

export function isStage(value: string): boolean {
  return STAGES.some((s) => s.toLowerCase() === value.toLowerCase());
}

const ALIAS = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/** Aliases are names like champion or challenger; a stage name or "latest" would make URIs ambiguous. */
export function checkAlias(value: string, field = 'alias'): string {
  if (!ALIAS.test(value))
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `${field}: expected a name of letters, digits, _ or - starting with a letter (at most 64), got "${value}"`,
    );
  if (isStage(value) || value.toLowerCase() === 'latest')
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `${field}: "${value}" is reserved (a stage or "latest"), choose another alias`,
    );
  return value;
}

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function checkModelName(value: string, field = 'name'): string {
  if (!MODEL_NAME.test(value))
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `${field}: expected letters, digits, _, . or - (at most 128, starting with a letter or digit), got "${value}"`,
    );
  return value;
}
