import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelRepository } from '../../src/lifecycle/model-repository.ts';
import { runPredict } from '../../src/pipeline/predict-pipeline.ts';

const root = mkdtempSync(join(tmpdir(), 'caliper-loading-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const fraudYaml = readFileSync('examples/fraud-detector/model.yaml', 'utf8');
const transaction = { transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310 };

/** A copy of the fraud example with its model.yaml edited. */
function fraudCopy(name: string, edit: (yaml: string) => string = (y) => y, versions = [1]): string {
  const dir = join(root, name);
  for (const v of versions) {
    mkdirSync(join(dir, String(v)), { recursive: true });
    cpSync('examples/fraud-detector/1/model.onnx', join(dir, String(v), 'model.onnx'));
  }
  writeFileSync(join(dir, 'model.yaml'), edit(fraudYaml));
  return dir;
}

async function loadError(dir: string): Promise<string> {
  const repository = new ModelRepository();
  await repository.loadPaths([dir]);
  await repository.close();
  expect(repository.failures).toHaveLength(1);
  return repository.failures[0]!.reason;
}

describe('load-time checks of model.yaml against the ONNX signature', () => {
  it('refuses a preprocess tensor the model does not take', async () => {
    const reason = await loadError(fraudCopy('wrong-name', (y) => y.replace('tensor: features', 'tensor: feats')));
    expect(reason).toMatch(
      /model\.yaml: preprocess tensor feats: the model has no input named "feats"; its inputs are features \(float32 \[-1, 10\]\)/,
    );
  });

  it('refuses a column count that does not match the input width', async () => {
    const reason = await loadError(
      fraudCopy('wrong-width', (y) => y.replace('    - { one_hot: merchant_category }\n', '')),
    );
    expect(reason).toMatch(/dimension 1 is 10 in the model but model.yaml builds 2 columns/);
  });

  it('refuses a dtype mismatch', async () => {
    const reason = await loadError(
      fraudCopy('wrong-dtype', (y) => y.replace('tensor: features', 'tensor: features\n  dtype: float64')),
    );
    expect(reason).toMatch(/preprocess tensor features.dtype: the model expects float32, model.yaml builds float64/);
  });

  it('refuses a postprocess output the model does not have', async () => {
    const reason = await loadError(
      fraudCopy('wrong-output', (y) => y.replace('output: fraud_probability', 'output: score')),
    );
    expect(reason).toMatch(
      /postprocess.fraud_probability.output: the model has no output named "score"; its outputs are fraud_probability/,
    );
  });

  it('refuses a file that is not an ONNX model', async () => {
    const dir = fraudCopy('not-onnx');
    writeFileSync(join(dir, '1', 'model.onnx'), 'this is not a model');
    expect(await loadError(dir)).toMatch(/ONNX Runtime cannot load .*not-onnx\/1\/model.onnx/);
  });

  it('refuses a folder without version subfolders', async () => {
    const dir = join(root, 'no-versions');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.yaml'), fraudYaml);
    expect(await loadError(dir)).toMatch(/no version folder with model.onnx/);
  });
});

describe('versions, instances and hooks', () => {
  it('serves the highest version by default and every version with versions: all', async () => {
    const repository = new ModelRepository();
    await repository.loadPaths([fraudCopy('two-versions', (y) => y, [1, 2])]);
    expect(repository.get('fraud_detector').defaultVersion).toBe(2);
    expect([...repository.get('fraud_detector').versions.keys()]).toEqual([2]);
    await repository.close();
    const all = new ModelRepository();
    await all.loadPaths([fraudCopy('all-versions', (y) => `${y}versions: all\n`, [1, 2, 3])]);
    expect([...all.get('fraud_detector').versions.keys()]).toEqual([1, 2, 3]);
    expect(all.version('fraud_detector', '1').version).toBe(1);
    await all.close();
  });

  it('gives the same answers in-thread and on two worker-thread instances', async () => {
    const inThread = new ModelRepository();
    await inThread.loadPaths([fraudCopy('in-thread')]);
    const workers = new ModelRepository();
    await workers.loadPaths([
      fraudCopy('workers', (y) =>
        y.replace(
          'instances: { count: 1, kind: in_thread, intra_op_threads: 1 }',
          'instances: { count: 2, kind: worker, intra_op_threads: 1 }',
        ),
      ),
    ]);
    expect(workers.version('fraud_detector').pool.instances).toHaveLength(2);
    const body = { instances: [transaction, { ...transaction, merchant_category: 'fuel' }] };
    const [a, b] = await Promise.all([
      runPredict(inThread.version('fraud_detector'), body),
      runPredict(workers.version('fraud_detector'), body),
    ]);
    expect(b.predictions).toEqual(a.predictions);
    await Promise.all([inThread.close(), workers.close()]);
  });

  it('runs a TypeScript hooks module before and after the declared transforms', async () => {
    const dir = fraudCopy('hooked', (y) => `${y}hooks: ./hooks.ts\n`);
    writeFileSync(
      join(dir, 'hooks.ts'),
      `
export const extraFields = ['currency'];
export function preprocess(row: Record<string, unknown>) {
  const rate = row.currency === 'EUR' ? 2 : 1;
  return { ...row, transaction_amount: (row.transaction_amount as number) * rate };
}
export function postprocess(prediction: Record<string, unknown>) {
  return { ...prediction, risk: (prediction.fraud_probability as number) > 0.5 ? 'high' : 'low' };
}
`,
    );
    const repository = new ModelRepository();
    await repository.loadPaths([dir]);
    expect(repository.failures).toEqual([]);
    const version = repository.version('fraud_detector');
    const eur = await runPredict(version, { ...transaction, currency: 'EUR' });
    const doubled = await runPredict(version, {
      ...transaction,
      transaction_amount: transaction.transaction_amount * 2,
    });
    expect(eur.predictions[0]!.fraud_probability).toBe(doubled.predictions[0]!.fraud_probability);
    expect(eur.predictions[0]!.risk).toMatch(/^(high|low)$/);
    await repository.close();
  });
});

describe('a repository of several models (start-up)', () => {
  it('loads its folders concurrently: a model still loading does not hold back the next folder', async () => {
    // The first folder's hooks module waits (top-level await) until the second folder's hooks module has run: loaded
    // one after the other, the first load would never finish.
    const repo = join(root, 'concurrent');
    const hooked = (folder: string, name: string, hooks: string): void => {
      const dir = join(repo, folder);
      mkdirSync(join(dir, '1'), { recursive: true });
      cpSync('examples/fraud-detector/1/model.onnx', join(dir, '1', 'model.onnx'));
      writeFileSync(
        join(dir, 'model.yaml'),
        `${fraudYaml.replace(/^name: .*$/m, `name: ${name}`)}hooks: ./hooks.mjs\n`,
      );
      writeFileSync(join(dir, 'hooks.mjs'), hooks);
    };
    hooked(
      'a-waits',
      'waits',
      `await new Promise((resolve) => { if (globalThis.__caliperSecondLoaded) resolve(); else globalThis.__caliperWakeFirst = resolve; });
export function postprocess(p) { return { ...p, first: true }; }
`,
    );
    hooked(
      'b-wakes',
      'wakes',
      `globalThis.__caliperSecondLoaded = true;
globalThis.__caliperWakeFirst?.();
export function postprocess(p) { return p; }
`,
    );
    // Two folders naming one model: the later folder fails as "already served", as when loaded one after the other.
    cpSync(join(repo, 'b-wakes'), join(repo, 'c-same-name'), { recursive: true });
    const repository = new ModelRepository();
    const loading = repository.loadPaths([repo]);
    const stuck = await Promise.race([
      loading.then(() => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 20_000).unref()),
    ]);
    expect(stuck, 'the first folder held back the second').toBe(false);
    expect(repository.list().map((m) => m.name)).toEqual(['waits', 'wakes']);
    expect(repository.failures).toEqual([
      {
        name: 'wakes',
        source: join(repo, 'c-same-name'),
        reason: `${join(repo, 'c-same-name', 'model.yaml')}: name: model "wakes" is already served`,
      },
    ]);
    expect((await runPredict(repository.version('waits'), transaction)).predictions[0]!.first).toBe(true);
    await repository.close();
    delete (globalThis as Record<string, unknown>).__caliperSecondLoaded;
  }, 30_000);
});
