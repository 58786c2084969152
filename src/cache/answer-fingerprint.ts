import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ModelConfig } from '../config/model-config.ts';

/**
 * The version of the shape of a cached answer (the prediction objects Caliper writes). Raise it whenever
 * Caliper changes what an answer holds or how it is serialized, so a new Caliper never reads an old one's entries.
 */
export const ANSWER_FORMAT_VERSION = 1;

/** model.yaml fields that say where or how fast a model runs, never what it answers. */
const NOT_SHAPING_ANSWERS = new Set([
  'file',
  'dir',
  'description',
  'versionPolicy',
  'instances',
  'warmup',
  'batching',
  'cache',
  'sla',
]);

/**
 * JSON with object keys sorted, so the same config always gives the same text (a lookup table's entries, say, in
 * whatever order model.yaml lists them). A parsed config holds only plain values, arrays and objects.
 */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
      return sorted;
    }
    return v;
  });
}

/** The effective config as far as it shapes answers: inputs, preprocess, postprocess, features, hooks' path. */
export function answerShapingConfig(config: ModelConfig): string {
  const shaping: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) if (!NOT_SHAPING_ANSWERS.has(key)) shaping[key] = value;
  return stableJson(shaping);
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * What an answer depends on besides the request, as one short hash: the model file's bytes, the
 * answer-shaping model.yaml, the hook module's source and Caliper's answer format. Two servers with the
 * same fingerprint give the same answer to the same request, so they may share cached answers; any change
 * (a retrained model under the same name, an edited postprocess, a changed hook) gives a new fingerprint.
 */
export async function answerFingerprint(config: ModelConfig, modelPath: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(`caliper-answer-format:${ANSWER_FORMAT_VERSION}\n`);
  hash.update(`model:${await hashFile(modelPath)}\n`);
  hash.update(`config:${answerShapingConfig(config)}\n`);
  if (config.hooks !== undefined) {
    const hooksFile = resolve(config.dir, config.hooks);
    hash.update(
      `hooks:${existsSync(hooksFile) ? createHash('sha256').update(readFileSync(hooksFile)).digest('hex') : 'missing'}\n`,
    );
  }
  return hash.digest('base64url').slice(0, 22);
}
