import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function caliper(...args: string[]): { status: number | null; stderr: string; stdout: string } {
  const result = spawnSync(process.execPath, ['bin/caliper.js', 'distill', ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stderr: result.stderr, stdout: result.stdout };
}

describe('caliper distill (CLI)', () => {
  it('fails with a one-line reason and a non-zero exit on bad input', () => {
    const missing = caliper(
      '--teacher',
      'no/such/teacher.onnx',
      '--train',
      'fashion-mnist:t10k',
      '--student',
      'mlp:8',
      '-o',
      'tmp/never.onnx',
    );
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim()).toBe('caliper: cannot read teacher model no/such/teacher.onnx: no such file');
    const spec = caliper(
      '--teacher',
      'x.onnx',
      '--train',
      'fashion-mnist:t10k',
      '--student',
      'transformer:8',
      '-o',
      'tmp/never.onnx',
    );
    expect(spec.status).toBe(1);
    expect(spec.stderr).toMatch(/^caliper: unknown student "transformer:8": expected mlp:W1,W2/);
    const alpha = caliper(
      '--teacher',
      'x.onnx',
      '--train',
      'fashion-mnist:t10k',
      '--student',
      'mlp:8',
      '-o',
      'tmp/never.onnx',
      '--alpha',
      '1.2',
    );
    expect(alpha.status).not.toBe(0);
    expect(alpha.stderr).toMatch(/--alpha: expected a number from 0 to 1, got "1.2"/);
  });

  it('refuses --seeds 0 naming the option', () => {
    const seeds = caliper(
      '--teacher',
      'x.onnx',
      '--train',
      'fashion-mnist:t10k',
      '--student',
      'mlp:8',
      '-o',
      'tmp/never.onnx',
      '--seeds',
      '0',
    );
    expect(seeds.status).not.toBe(0);
    expect(seeds.stderr).toMatch(/--seeds: expected an integer >= 1, got "0"/);
  });
});
