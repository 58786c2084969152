import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { isMap, isScalar, parseDocument, type Document } from 'yaml';
import { listModelVersions, MODEL_CONFIG_FILE, parseModelConfigText } from '../config/model-config-file.ts';
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
export function applySettingsToYaml(
  text: string,
  settings: TuneSettings,
  options: { disableCache?: boolean; current?: TuneSettings } = {},
): string {
  const document = parseDocument(text);
  if (document.errors.length > 0)
    throw new CaliperError(
      'CALIPER_CONFIG_INVALID',
      `model.yaml: invalid YAML: ${document.errors[0]!.message.split('\n')[0]}`,
    );
  // With the current settings known, only what changes is written: a setting equal to its effective value stays
  // as the file spells it (or absent, where the default applies).
  const changed = (key: keyof TuneSettings): boolean =>
    options.current === undefined || options.current[key] !== settings[key];
  const batchingWasOn = options.current === undefined || options.current.maxBatchSize > 1;
  if (settings.maxBatchSize > 1) {
    if (document.get('batching') === false) document.set('batching', document.createNode({}));
    if (options.current === undefined || !batchingWasOn || document.getIn(['batching', 'enabled']) === false)
      setIn(document, ['batching', 'enabled'], true);
    if (changed('maxBatchSize')) setIn(document, ['batching', 'max_batch_size'], settings.maxBatchSize);
    if (changed('maxQueueDelayUs') || !batchingWasOn)
      setIn(document, ['batching', 'max_queue_delay_us'], settings.maxQueueDelayUs);
    const preferred = document.getIn(['batching', 'preferred_batch_sizes'], true);
    if (preferred !== undefined && changed('maxBatchSize')) {
      const sizes = (document.getIn(['batching', 'preferred_batch_sizes']) as { toJSON(): unknown }).toJSON();
      const kept = Array.isArray(sizes)
        ? sizes.filter((s): s is number => typeof s === 'number' && s <= settings.maxBatchSize)
        : [];
      if (kept.length > 0) {
        if (kept.length !== (sizes as unknown[]).length)
          document.setIn(['batching', 'preferred_batch_sizes'], document.createNode(kept, { flow: true }));
      } else {
        document.deleteIn(['batching', 'preferred_batch_sizes']);
      }
    }
  } else if (document.has('batching') && batchingWasOn) {
    if (isMap(document.get('batching'))) setIn(document, ['batching', 'enabled'], false);
    else document.set('batching', false);
  }
  if (changed('instanceCount')) setIn(document, ['instances', 'count'], settings.instanceCount);
  if (changed('instanceKind')) setIn(document, ['instances', 'kind'], settings.instanceKind);
  if (changed('intraOpThreads')) setIn(document, ['instances', 'intra_op_threads'], settings.intraOpThreads);
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

/** model.yaml files that set a model's serving settings: the folder's own, and any version folder's. */
export function modelConfigFiles(modelDir: string): string[] {
  const dir = resolve(modelDir);
  const files = [join(dir, MODEL_CONFIG_FILE)];
  for (const version of listModelVersions(dir)) {
    const file = join(dir, String(version), MODEL_CONFIG_FILE);
    if (existsSync(file)) files.push(file);
  }
  return files;
}

/** Rewrites the model's model.yaml files with the settings, after checking each result still validates. */
export function writeSettings(modelDir: string, settings: TuneSettings, current?: TuneSettings): string[] {
  const dir = resolve(modelDir);
  const files = modelConfigFiles(dir);
  const updated = files.map((file) => {
    const text = applySettingsToYaml(readFileSync(file, 'utf8'), settings, current ? { current } : {});
    parseModelConfigText(text, file, dir);
    return text;
  });
  files.forEach((file, i) => writeFileSync(file, updated[i]!));
  return files;
}

/**
 * A throw-away copy of a model folder serving under candidate settings: a rewritten model.yaml next to
 * links to everything else (version folders, hooks, samples), so no model file is copied. The response
 * cache is turned off so that repeated benchmark requests reach the model.
 */
export class CandidateFolder {
  readonly dir: string;

  constructor(modelDir: string, settings: TuneSettings) {
    /**
     * Version folders and model files are linked (they can be large); everything else (hooks, feature files) is
     * copied, because model.yaml paths must resolve inside the model folder and a link would lead out of it.
     */
    const linkOrCopy = (from: string, to: string): void => {
      if (/^[1-9][0-9]*$/.test(basename(from)) || /\.(onnx|data|bin)$/.test(from)) symlinkSync(from, to);
      else cpSync(from, to, { recursive: true });
    };
    const source = resolve(modelDir);
    const parent = mkdtempSync(join(tmpdir(), 'caliper-tune-'));
    const name = parseModelConfigText(
      readFileSync(join(source, MODEL_CONFIG_FILE), 'utf8'),
      join(source, MODEL_CONFIG_FILE),
      source,
    ).name;
    // The folder is named after the model, like the original.
    this.dir = join(parent, name);
    try {
      mkdirSync(this.dir);
      for (const entry of readdirSync(source)) {
        if (entry === MODEL_CONFIG_FILE) continue;
        const versionConfig = join(source, entry, MODEL_CONFIG_FILE);
        if (/^[1-9][0-9]*$/.test(entry) && existsSync(versionConfig)) {
          // A version with its own model.yaml gets the settings too.
          mkdirSync(join(this.dir, entry));
          for (const inner of readdirSync(join(source, entry))) {
            if (inner !== MODEL_CONFIG_FILE) linkOrCopy(join(source, entry, inner), join(this.dir, entry, inner));
          }
          writeCandidateConfig(versionConfig, join(this.dir, entry, MODEL_CONFIG_FILE), this.dir, settings);
        } else {
          linkOrCopy(join(source, entry), join(this.dir, entry));
        }
      }
      writeCandidateConfig(join(source, MODEL_CONFIG_FILE), join(this.dir, MODEL_CONFIG_FILE), this.dir, settings);
    } catch (error) {
      rmSync(parent, { recursive: true, force: true });
      throw error;
    }
  }

  remove(): void {
    rmSync(resolve(this.dir, '..'), { recursive: true, force: true });
  }
}

function writeCandidateConfig(from: string, to: string, modelDir: string, settings: TuneSettings): void {
  const updated = applySettingsToYaml(readFileSync(from, 'utf8'), settings, { disableCache: true });
  parseModelConfigText(updated, to, modelDir);
  writeFileSync(to, updated);
}
