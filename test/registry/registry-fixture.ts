import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeModel, encodeModel } from '../../src/optimize/onnx/model-io.ts';

export const FRAUD_ONNX = 'examples/fraud-detector/1/model.onnx';
export const FRAUD_YAML = 'examples/fraud-detector/model.yaml';

/** A scratch folder with a registry home and room for broken inputs; remove() cleans it up. */
export class RegistryFixture {
  readonly dir = mkdtempSync(join(tmpdir(), 'caliper-registry-'));
  readonly home = join(this.dir, 'home');

  file(name: string, content: string | Uint8Array): string {
    const path = join(this.dir, name);
    writeFileSync(path, content);
    return path;
  }

  truncatedModel(): string {
    const bytes = readFileSync(FRAUD_ONNX);
    return this.file('truncated.onnx', bytes.subarray(0, Math.floor(bytes.length / 2)));
  }

  /** model.yaml whose tensor is 11 columns wide, where the model takes 10. */
  mismatchedConfig(): string {
    const text = readFileSync(FRAUD_YAML, 'utf8').replace(
      '    - { one_hot: merchant_category }',
      '    - { one_hot: merchant_category }\n    - { log1p: transaction_amount }',
    );
    return this.file('mismatch.yaml', text);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The fraud model with a different doc string: the same graph, other bytes (so another artifact). */
export function fraudVariant(fixture: RegistryFixture, label: string): string {
  const model = decodeModel(readFileSync(FRAUD_ONNX));
  model.docString = `variant ${label}`;
  return fixture.file(`fraud-${label}.onnx`, encodeModel(model));
}
