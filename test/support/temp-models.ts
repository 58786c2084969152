import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModel } from '../../src/optimize/onnx/model-io.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';

/** A model repository in a temporary folder: one model folder (model.yaml + 1/model.onnx) per model. */
export class TempModelRepository {
  readonly dir = mkdtempSync(join(tmpdir(), 'caliper-models-'));

  /**
   * Writes `<dir>/<folder>/model.yaml` (JSON is valid YAML) and `<dir>/<folder>/1/model.onnx`,
   * the model given as a ModelProto, its encoded bytes, or the path of an .onnx file to copy.
   */
  add(folder: string, config: Record<string, unknown>, model: ModelProto | Uint8Array | string): string {
    const modelDir = join(this.dir, folder);
    mkdirSync(join(modelDir, '1'), { recursive: true });
    writeFileSync(join(modelDir, 'model.yaml'), `${JSON.stringify(config, null, 2)}\n`);
    const target = join(modelDir, '1', 'model.onnx');
    if (typeof model === 'string') copyFileSync(model, target);
    else writeFileSync(target, model instanceof Uint8Array ? model : encodeModel(model));
    return modelDir;
  }

  /** Copies an existing model.yaml and ONNX file in as `<dir>/<folder>/model.yaml` and `<dir>/<folder>/1/model.onnx`. */
  addFiles(folder: string, yamlPath: string, onnxPath: string): string {
    const modelDir = join(this.dir, folder);
    mkdirSync(join(modelDir, '1'), { recursive: true });
    copyFileSync(yamlPath, join(modelDir, 'model.yaml'));
    copyFileSync(onnxPath, join(modelDir, '1', 'model.onnx'));
    return modelDir;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
