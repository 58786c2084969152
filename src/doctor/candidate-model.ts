import { createHash } from 'node:crypto';
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
import { isAbsolute, join, resolve } from 'node:path';
import { parseModelConfigText } from '../config/model-config-file.ts';
import type { ModelSource } from '../optimize/model-source.ts';
import { applyYamlEdits, type ModelChange } from './model-change.ts';

/** model.yaml text of the source's served version with the change's edits, checked to load. */
export function changedConfigText(source: ModelSource, change: ModelChange, where: string): string {
  const text = applyYamlEdits(source.configText, change.edits);
  parseModelConfigText(text, join(where, 'model.yaml'), where);
  return text;
}

/**
 * What a change serves, as a string two changes share exactly when they serve the same thing: the model
 * configuration as loaded from the changed model.yaml (defaults filled in, so an edit that restates a default changes
 * nothing) and the SHA-256 of the model file's bytes (the original, or the optimized file). Reads the model file.
 */
export function servedConfigKey(source: ModelSource, change: ModelChange): string {
  const dir = source.config.dir;
  const config = parseModelConfigText(changedConfigText(source, change, dir), join(dir, 'model.yaml'), dir);
  const bytes = createHash('sha256')
    .update(readFileSync(change.modelFile ?? source.modelPath))
    .digest('hex');
  return `${JSON.stringify(config)}\n${bytes}`;
}

/**
 * A throw-away model folder serving the source's version under a change: model.yaml (the version's own text with
 * the edits), `<version>/model.onnx` linked to the original or the optimized file, and copies of the folder's
 * other entries (feature files, hooks), so paths in model.yaml resolve as in the original.
 */
export class CandidateModel {
  readonly dir: string;
  private readonly parent: string;

  constructor(source: ModelSource, change: ModelChange) {
    this.parent = mkdtempSync(join(tmpdir(), 'caliper-doctor-'));
    this.dir = join(this.parent, source.config.name);
    try {
      mkdirSync(join(this.dir, String(source.version)), { recursive: true });
      const origin = source.config.dir;
      if (!source.from.startsWith('models:/') && existsSync(origin)) {
        for (const entry of readdirSync(origin)) {
          if (entry === 'model.yaml' || /^[1-9][0-9]*$/.test(entry)) continue;
          cpSync(join(origin, entry), join(this.dir, entry), { recursive: true });
        }
      }
      writeFileSync(join(this.dir, 'model.yaml'), changedConfigText(source, change, this.dir));
      const file = change.modelFile ?? source.modelPath;
      symlinkSync(isAbsolute(file) ? file : resolve(file), join(this.dir, String(source.version), 'model.onnx'));
    } catch (error) {
      this.remove();
      throw error;
    }
  }

  remove(): void {
    rmSync(this.parent, { recursive: true, force: true });
  }
}
