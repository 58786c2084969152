import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readModelConfig } from '../../src/config/model-config-file.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { startServing } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';

/**
 * model.yaml's path fields (hooks, features.source) resolve inside the model folder: `..`, absolute paths where
 * the field takes none, and symbolic links out of the folder are refused at load with the field and the reason.
 */
const root = mkdtempSync(join(tmpdir(), 'caliper-paths-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const V2_YAML = readFileSync('examples/fraud-detector/2/model.yaml', 'utf8');
const USERS = resolve('examples/fraud-detector/features/users.csv');
const HOOK = 'export function postprocess(p) { return { ...p, hooked: true }; }\n';

// Files outside every model folder that a hostile model.yaml would like to reach.
const elsewhere = join(root, 'elsewhere');
mkdirSync(elsewhere, { recursive: true });
writeFileSync(join(elsewhere, 'hooks.mjs'), HOOK);
cpSync(USERS, join(elsewhere, 'users.csv'));

let folders = 0;
/** A model folder models/NAME with the fraud model (version 2, with features) and `edit` applied to its model.yaml. */
function modelFolder(edit: (yaml: string) => string, setup: (dir: string) => void = () => undefined): string {
  const dir = join(root, 'models', `m${folders++}`);
  mkdirSync(join(dir, '1'), { recursive: true });
  cpSync('examples/fraud-detector/2/model.onnx', join(dir, '1', 'model.onnx'));
  mkdirSync(join(dir, 'features'));
  cpSync(USERS, join(dir, 'features', 'users.csv'));
  writeFileSync(join(dir, 'hooks.mjs'), HOOK);
  setup(dir);
  writeFileSync(join(dir, 'model.yaml'), edit(V2_YAML));
  return dir;
}
const withHooks = (path: string) => (yaml: string) => `${yaml}\nhooks: ${JSON.stringify(path)}\n`;
const withSource = (path: string) => (yaml: string) =>
  yaml.replace(/source: .*users\.csv/, `source: ${JSON.stringify(path)}`);

describe('model.yaml paths stay inside the model folder', () => {
  const refused: [string, () => string, string, RegExp][] = [
    ['hooks: ../../elsewhere', () => modelFolder(withHooks('../../elsewhere/hooks.mjs')), 'hooks', /outside/],
    ['hooks: ./sub/../../x', () => modelFolder(withHooks('./features/../../elsewhere.mjs')), 'hooks', /outside/],
    ['hooks: an absolute path', () => modelFolder(withHooks(join(elsewhere, 'hooks.mjs'))), 'hooks', /absolute/],
    [
      'hooks: a link out of the folder',
      () =>
        modelFolder(withHooks('./linked.mjs'), (dir) =>
          symlinkSync(join(elsewhere, 'hooks.mjs'), join(dir, 'linked.mjs')),
        ),
      'hooks',
      /symbolic link/,
    ],
    [
      'hooks: through a linked folder',
      () => modelFolder(withHooks('./shared/hooks.mjs'), (dir) => symlinkSync(elsewhere, join(dir, 'shared'))),
      'hooks',
      /symbolic link/,
    ],
    [
      'features.source: ../../elsewhere',
      () => modelFolder(withSource('../../elsewhere/users.csv')),
      'features.source',
      /outside/,
    ],
    [
      'features.source: a link out of the folder',
      () =>
        modelFolder(withSource('features/linked.csv'), (dir) =>
          symlinkSync(join(elsewhere, 'users.csv'), join(dir, 'features', 'linked.csv')),
        ),
      'features.source',
      /symbolic link/,
    ],
  ];

  for (const [label, make, field, reason] of refused) {
    it(`refuses ${label} at config load, naming the field and the reason`, () => {
      const dir = make();
      let error: { code?: string; message: string } | undefined;
      try {
        readModelConfig(dir);
      } catch (caught) {
        error = caught as { code?: string; message: string };
      }
      expect(error?.code).toBe('CALIPER_CONFIG_INVALID');
      expect(error?.message).toContain(`${join(dir, 'model.yaml')}: ${field}: expected`);
      expect(error?.message).toMatch(reason);
    });
  }

  it('accepts paths inside the folder, and an absolute features.source (README: an operator-placed data file)', () => {
    expect(readModelConfig(modelFolder(withHooks('./features/../hooks.mjs'))).hooks).toBe('./features/../hooks.mjs');
    expect(
      readModelConfig(
        modelFolder(withHooks('./inner.mjs'), (dir) => symlinkSync(join(dir, 'hooks.mjs'), join(dir, 'inner.mjs'))),
      ).hooks,
    ).toBe('./inner.mjs');
    expect(readModelConfig(modelFolder(withSource(USERS))).features?.store).toEqual({ kind: 'memory', source: USERS });
  });

  it('a served repository refuses the model with that reason; registration refuses it too', async () => {
    const repo = join(root, 'repo');
    const bad = modelFolder(withHooks('../../elsewhere/hooks.mjs'));
    mkdirSync(repo);
    cpSync(bad, join(repo, 'fraud'), { recursive: true });
    const server = await startServing({ paths: [repo], port: 0, logger: quietLogger(), strictReadiness: true });
    try {
      expect(server.repository.has('fraud_detector')).toBe(false);
      const ready = (await (await fetch(`${server.url}/v2/health/ready`)).json()) as {
        failed_models?: { reason: string }[];
      };
      expect(ready.failed_models?.[0]?.reason).toMatch(/hooks: expected a path inside the model folder/);
    } finally {
      await server.close();
    }
    const registry = ModelRegistry.open(join(root, 'registry'));
    try {
      await expect(
        registry.register({
          file: join(bad, '1', 'model.onnx'),
          configFile: join(bad, 'model.yaml'),
          name: 'fraud',
          actor: 'test',
        }),
      ).rejects.toMatchObject({ code: 'CALIPER_CONFIG_INVALID', message: expect.stringMatching(/hooks: .*outside/) });
    } finally {
      await registry.close();
    }
  });
});
