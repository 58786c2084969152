/*
 * ONNX Runtime's telemetry stays off for programs that use Caliper as a library and never pass through the CLI (which
 * sets ORT_DISABLE_TELEMETRY before anything loads): every module that creates a session sets it first. ORT keeps a
 * device id and an event cache under $HOME/.cache/Microsoft when telemetry is on, so a process with a HOME of its own
 * shows whether it was.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = join(import.meta.dirname, '../..');
const FRAUD_ONNX = join(root, 'examples/fraud-detector/1/model.onnx');
const homes: string[] = [];

/** Runs `script` (an ES module's text, in the repository root) with a fresh HOME; answers that HOME. */
async function inFreshHome(script: string, env: Record<string, string> = {}): Promise<string> {
  const home = mkdtempSync(join(tmpdir(), 'caliper-ort-home-'));
  homes.push(home);
  // ORT also keeps telemetry off when CI is set (CI=1 or CI=true, as CI runners set it), which would make every check
  // here pass whatever Caliper does, and the control fail.
  const { ORT_DISABLE_TELEMETRY: _ort, XDG_CACHE_HOME: _cache, CI: _ci, ...rest } = process.env;
  await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    env: { ...rest, HOME: home, ...env },
  });
  return home;
}

const telemetryFolder = (home: string): string => join(home, '.cache', 'Microsoft');

afterAll(() => {
  for (const home of homes) rmSync(home, { recursive: true, force: true });
});

describe('ONNX Runtime telemetry for library users', () => {
  it('is off when a program loads a model through the optimizers (openSession, profileKernels)', async () => {
    const home = await inFreshHome(`
      import { readFileSync } from 'node:fs';
      import ort from 'onnxruntime-node';
      import { openSession } from './src/optimize/onnx/ort-session.ts';
      import { profileKernels } from './src/optimize/evaluate/kernel-profile.ts';
      const bytes = readFileSync(${JSON.stringify(FRAUD_ONNX)});
      await openSession(bytes);
      await profileKernels(bytes, { features: new ort.Tensor('float32', new Float32Array(10), [1, 10]) });
    `);
    expect(existsSync(telemetryFolder(home))).toBe(false);
  }, 60_000);

  it('is off when a program loads a model for serving (OnnxSession)', async () => {
    const home = await inFreshHome(`
      import { OnnxSession } from './src/runtime/onnx-session.ts';
      await OnnxSession.create({ modelPath: ${JSON.stringify(FRAUD_ONNX)}, intraOpThreads: 1, interOpThreads: 1, graphLevel: 'all' });
    `);
    expect(existsSync(telemetryFolder(home))).toBe(false);
  }, 60_000);

  it('stays on where the user asks for it (ORT_DISABLE_TELEMETRY=0), which shows the check can see it', async () => {
    const home = await inFreshHome(
      `
      import { readFileSync } from 'node:fs';
      import { openSession } from './src/optimize/onnx/ort-session.ts';
      await openSession(readFileSync(${JSON.stringify(FRAUD_ONNX)}));
    `,
      { ORT_DISABLE_TELEMETRY: '0' },
    );
    expect(existsSync(telemetryFolder(home))).toBe(true);
  }, 60_000);
});
