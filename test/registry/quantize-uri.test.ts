import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { FRAUD_ONNX, FRAUD_YAML, RegistryFixture } from './registry-fixture.ts';

describe('caliper quantize with a registry URI', () => {
  const fixture = new RegistryFixture();
  afterAll(() => fixture.remove());

  it('quantizes the registered version the URI names', async () => {
    const registry = ModelRegistry.open(fixture.home);
    await registry.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await registry.close();
    const output = join(fixture.dir, 'fraud-int8.onnx');
    const stdout = execFileSync(
      process.execPath,
      [
        'bin/caliper.js',
        'quantize',
        'models:/fraud/latest',
        '-o',
        output,
        '--mode',
        'dynamic',
        '--no-latency',
        '--force',
        '--json',
        '--registry',
        fixture.home,
      ],
      { encoding: 'utf8' },
    );
    expect(existsSync(output)).toBe(true);
    expect(JSON.parse(stdout)).toMatchObject({ input: 'models:/fraud/latest', output });
  });
});
