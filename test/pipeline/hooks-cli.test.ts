import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/redis-server.ts';

/**
 * Hook modules as users write them: in a model folder far from this repository, with no package.json anywhere
 * above it (or one beside the hook), in TypeScript (with types and a relative import of another .ts file) or JavaScript (ESM or CommonJS),
 * loaded by `caliper serve` run as a command, not in-process.
 */
const HOOKS: Record<string, Record<string, string>> = {
  hooked_ts: {
    'hooks.ts': `import { label } from './label.ts';
export const extraFields: string[] = ['currency'];
interface Row { transaction_amount: number; currency?: string; [field: string]: unknown }
export function preprocess(row: Row): Row {
  return { ...row, transaction_amount: row.currency === 'EUR' ? row.transaction_amount * 2 : row.transaction_amount };
}
export function postprocess(prediction: Record<string, unknown>): Record<string, unknown> {
  return { ...prediction, hook: label('ts') };
}
`,
    'label.ts': `export const label = (kind: string): string => \`\${kind} hook\`;\n`,
  },
  hooked_esm_js: {
    'hooks.js': `export function postprocess(prediction) { return { ...prediction, hook: 'esm js hook' }; }\n`,
  },
  hooked_cjs: {
    'hooks.cjs': `exports.postprocess = (prediction) => ({ ...prediction, hook: 'cjs hook' });\n`,
  },
  // With a package.json beside the hook: "type": "module" with a TypeScript hook, and CommonJS .js.
  hooked_ts_module_package: {
    'package.json': '{ "name": "my-hooks", "private": true, "type": "module" }\n',
    'hooks.ts': `export function postprocess(prediction: Record<string, unknown>) { return { ...prediction, hook: 'ts hook in a module package' }; }\n`,
  },
  hooked_js_commonjs_package: {
    'package.json': '{ "name": "my-cjs-hooks", "private": true, "type": "commonjs" }\n',
    'hooks.js': `exports.postprocess = (prediction) => ({ ...prediction, hook: 'js hook in a commonjs package' });\n`,
  },
  hooked_mts: {
    'hooks.mts': `export function postprocess(prediction: Record<string, unknown>) { return { ...prediction, hook: 'mts hook' }; }\n`,
  },
};

const transaction = { transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310 };
const root = mkdtempSync(join(tmpdir(), 'caliper-hooks-cli-'));
let server: ChildProcess;
let url = '';
let stderr = '';

async function waitUntilReady(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`caliper serve exited ${server.exitCode}: ${stderr}`);
    const status = await fetch(`${url}/v2/health/ready`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not ready within ${timeoutMs} ms: ${stderr}`);
}

async function predict(model: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const response = await fetch(`${url}/models/${model}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  expect(response.status, JSON.stringify(json)).toBe(200);
  return json;
}

beforeAll(async () => {
  const fraudYaml = readFileSync('examples/fraud-detector/model.yaml', 'utf8').replace(/^cache:.*$/m, '');
  for (const [name, files] of Object.entries(HOOKS)) {
    const dir = join(root, name);
    mkdirSync(join(dir, '1'), { recursive: true });
    cpSync('examples/fraud-detector/1/model.onnx', join(dir, '1', 'model.onnx'));
    const hookFile = Object.keys(files).find((file) => file.startsWith('hooks.'))!;
    writeFileSync(
      join(dir, 'model.yaml'),
      `${fraudYaml.replace(/^name: .*$/m, `name: ${name}`)}hooks: ./${hookFile}\n`,
    );
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  }
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  server = spawn(process.execPath, ['bin/caliper.js', 'serve', root, '--port', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' },
  });
  server.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await waitUntilReady(60_000);
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await once(server, 'exit');
  }
  rmSync(root, { recursive: true, force: true });
});

describe('caliper serve with hook modules outside this repository', () => {
  it('loads a TypeScript hook that imports another TypeScript file, and runs both of its functions', async () => {
    const eur = await predict('hooked_ts', { ...transaction, currency: 'EUR' });
    const doubled = await predict('hooked_ts', {
      ...transaction,
      transaction_amount: transaction.transaction_amount * 2,
    });
    expect(eur.hook).toBe('ts hook');
    expect(eur.fraud_probability).toBe(doubled.fraud_probability);
  });

  it('loads an ES-module .js hook with no package.json saying "type": "module"', async () => {
    expect((await predict('hooked_esm_js', transaction)).hook).toBe('esm js hook');
  });

  it('loads a CommonJS .cjs hook and a .mts hook', async () => {
    expect((await predict('hooked_cjs', transaction)).hook).toBe('cjs hook');
    expect((await predict('hooked_mts', transaction)).hook).toBe('mts hook');
  });

  it('loads hooks beside a package.json: TypeScript in a "type": "module" package, CommonJS .js in a "commonjs" one', async () => {
    expect((await predict('hooked_ts_module_package', transaction)).hook).toBe('ts hook in a module package');
    expect((await predict('hooked_js_commonjs_package', transaction)).hook).toBe('js hook in a commonjs package');
  });
});
