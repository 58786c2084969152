import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isMap, isScalar, parseDocument, type Document } from 'yaml';
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
  return spliceSections(text, document.toString({ lineWidth: 0 }), ['batching', 'instances', 'cache']);
}

/** Source offsets of each top-level entry of a YAML text: from its key to the end of its value. */
function topLevelRanges(text: string): Map<string, [number, number]> {
  const ranges = new Map<string, [number, number]>();
  const contents = parseDocument(text).contents;
  if (!isMap(contents)) return ranges;
  for (const pair of contents.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
    const start = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
    const end = (pair.value as { range?: [number, number, number] } | null)?.range?.[1];
    if (key !== undefined && start !== undefined && end !== undefined) ranges.set(key, [start, end]);
  }
  return ranges;
}

/**
 * Re-serializing a whole document normalizes its formatting; this keeps the original text everywhere except
 * the top-level sections the tuner touched, which are taken from the re-serialized text.
 */
function spliceSections(original: string, updated: string, keys: readonly string[]): string {
  const before = topLevelRanges(original);
  const after = topLevelRanges(updated);
  let result = original;
  const replaced = keys
    .filter((key) => before.has(key) && after.has(key))
    .sort((a, b) => before.get(b)![0] - before.get(a)![0]);
  for (const key of replaced) {
    const [start, end] = before.get(key)!;
    const [newStart, newEnd] = after.get(key)!;
    const was = original.slice(start, end);
    let section = updated.slice(newStart, newEnd).replace(/\n$/, '') + (was.endsWith('\n') ? '\n' : '');
    // The serializer pads flow sequences as it pads flow maps; keep the file's own `[a, b]` spelling.
    if (/\[[^ \n]/.test(was) && !/\[ /.test(was)) section = section.replace(/\[ /g, '[').replace(/ \]/g, ']');
    result = result.slice(0, start) + section + result.slice(end);
  }
  for (const key of keys) {
    if (before.has(key) || !after.has(key)) continue;
    const [newStart, newEnd] = after.get(key)!;
    result = `${result.replace(/\n*$/, '\n')}${updated.slice(newStart, newEnd).replace(/\n$/, '')}\n`;
  }
  return result;
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
