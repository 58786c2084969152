import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isMap, parseDocument, type Document } from 'yaml';
import { MODEL_CONFIG_FILE, parseModelConfigText } from '../config/model-config-file.ts';
import { CaliperError } from '../errors.ts';
import type { TuneSettings } from './tune-space.ts';

/** Sets `path` to `value` in a YAML document, keeping comments, key order and the style of the maps on the way. */
function setIn(document: Document, path: string[], value: unknown): void {
  const parent = path.slice(0, -1);
  if (parent.length > 0 && !isMap(document.getIn(parent))) document.setIn(parent, document.createNode({}));
  document.setIn(path, value);
}

/**
 * Writes tuned settings into model.yaml text through the YAML document model, so everything else in the file —
 * comments, other sections, flow or block style — is kept as written.
 */
export function applySettingsToYaml(text: string, settings: TuneSettings, options: { disableCache?: boolean } = {}): string {
  const document = parseDocument(text);
  if (document.errors.length > 0) throw new CaliperError('CALIPER_CONFIG_INVALID', `model.yaml: invalid YAML: ${document.errors[0]!.message.split('\n')[0]}`);
  if (document.get('batching') === false) document.set('batching', document.createNode({}));
  if (settings.maxBatchSize > 1) {
    setIn(document, ['batching', 'enabled'], true);
    setIn(document, ['batching', 'max_batch_size'], settings.maxBatchSize);
    setIn(document, ['batching', 'max_queue_delay_us'], settings.maxQueueDelayUs);
    const preferred = document.getIn(['batching', 'preferred_batch_sizes'], true);
    if (preferred !== undefined) {
      const sizes = (document.getIn(['batching', 'preferred_batch_sizes']) as { toJSON(): unknown }).toJSON();
      const kept = Array.isArray(sizes) ? sizes.filter((s): s is number => typeof s === 'number' && s <= settings.maxBatchSize) : [];
      if (kept.length > 0) {
        const node = document.createNode(kept, { flow: true });
        document.setIn(['batching', 'preferred_batch_sizes'], node);
      } else {
        document.deleteIn(['batching', 'preferred_batch_sizes']);
      }
    }
  } else if (document.has('batching')) {
    setIn(document, ['batching', 'enabled'], false);
  }
  setIn(document, ['instances', 'count'], settings.instanceCount);
  setIn(document, ['instances', 'kind'], settings.instanceKind);
  setIn(document, ['instances', 'intra_op_threads'], settings.intraOpThreads);
  if (options.disableCache && document.has('cache')) setIn(document, ['cache', 'enabled'], false);
  return document.toString();
}

/** Rewrites DIR/model.yaml with the settings, after checking the result still validates. */
export function writeSettings(modelDir: string, settings: TuneSettings): string {
  const file = join(resolve(modelDir), MODEL_CONFIG_FILE);
  const updated = applySettingsToYaml(readFileSync(file, 'utf8'), settings);
  parseModelConfigText(updated, file, resolve(modelDir));
  writeFileSync(file, updated);
  return file;
}

/**
 * A throw-away copy of a model folder serving under candidate settings: a rewritten model.yaml next to
 * links to everything else (version folders, hooks, samples), so no model file is copied. The response
 * cache is turned off so that repeated benchmark requests reach the model.
 */
export class CandidateFolder {
  readonly dir: string;

  constructor(modelDir: string, settings: TuneSettings) {
    const source = resolve(modelDir);
    const parent = mkdtempSync(join(tmpdir(), 'caliper-tune-'));
    const text = readFileSync(join(source, MODEL_CONFIG_FILE), 'utf8');
    const name = parseModelConfigText(text, join(source, MODEL_CONFIG_FILE), source).name;
    // The folder is named after the model, like the original.
    this.dir = join(parent, name);
    try {
      mkdirSync(this.dir);
      for (const entry of readdirSync(source)) {
        if (entry !== MODEL_CONFIG_FILE) symlinkSync(join(source, entry), join(this.dir, entry));
      }
      const updated = applySettingsToYaml(text, settings, { disableCache: true });
      parseModelConfigText(updated, join(this.dir, MODEL_CONFIG_FILE), this.dir);
      writeFileSync(join(this.dir, MODEL_CONFIG_FILE), updated);
    } catch (error) {
      rmSync(parent, { recursive: true, force: true });
      throw error;
    }
  }

  remove(): void {
    rmSync(resolve(this.dir, '..'), { recursive: true, force: true });
  }
}
