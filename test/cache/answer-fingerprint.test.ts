import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerFingerprint } from '../../src/cache/answer-fingerprint.ts';
import { readModelConfig } from '../../src/config/model-config-file.ts';

// The answer fingerprint decides which servers share cached answers (src/cache/version-cache.ts puts it in every
// Redis key): two model folders that answer alike must share it, and any difference in what they answer must not.
// Each test writes its own model folders from the fraud detector example (real model.yaml, real ONNX file).

const example = join(import.meta.dirname, '../../examples/fraud-detector');
const exampleYaml = readFileSync(join(example, 'model.yaml'), 'utf8');

let root: string;
let folders = 0;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'caliper-fingerprint-'));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fresh fraud detector folder whose model.yaml is the example's after `edit`; `files` are written beside it. */
function modelFolder(edit: (yaml: string) => string = (y) => y, files: Record<string, string> = {}): string {
  const dir = join(root, `model-${++folders}`);
  mkdirSync(join(dir, '1'), { recursive: true });
  cpSync(join(example, '1', 'model.onnx'), join(dir, '1', 'model.onnx'));
  writeFileSync(join(dir, 'model.yaml'), edit(exampleYaml));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** The fingerprint a server loading version 1 of `dir` would put in its cache keys. */
function fingerprintOf(dir: string): Promise<string> {
  return answerFingerprint(readModelConfig(dir), join(dir, '1', 'model.onnx'));
}

/** Replaces one exact piece of the example's model.yaml, failing loudly if the example no longer holds it. */
function replacing(from: string | RegExp, to: string): (yaml: string) => string {
  return (yaml) => {
    const edited = yaml.replace(from, to);
    if (edited === yaml) throw new Error(`the example model.yaml no longer holds ${String(from)}`);
    return edited;
  };
}

const hook = (tier: string): string => `export function postprocess(p) { return { ...p, tier: "${tier}" }; }\n`;

describe('the answer fingerprint', () => {
  it('is a short URL-safe text, the same for two copies of one model folder', async () => {
    const a = await fingerprintOf(modelFolder());
    const b = await fingerprintOf(modelFolder());
    expect(a).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(b).toBe(a);
  });

  it.each([
    ['the description', replacing(/^description: .*$/m, 'description: another text')],
    ['the instances', replacing(/^instances: .*$/m, 'instances: { count: 2, kind: worker, intra_op_threads: 1 }')],
    ['the batching', replacing(/^batching: .*$/m, 'batching: { max_batch_size: 8, max_queue_delay_us: 100 }')],
    ['the cache settings', replacing(/^cache: .*$/m, 'cache: { max_entries: 10, ttl_s: 5 }')],
    ['the SLA', replacing(/^sla: .*$/m, 'sla: { p99_ms: 5 }')],
    ['the warm-up', (y: string) => `${y}warmup: { batch_size: 4, runs: 3 }\n`],
    ['the served versions', (y: string) => `${y}versions: all\n`],
    [
      'the order of keys within a field',
      replacing('{ type: number, minimum: 0, description', '{ minimum: 0, type: number, description'),
    ],
  ])('stays the same when only %s changes (servers tuned differently share answers)', async (_what, edit) => {
    expect(await fingerprintOf(modelFolder(edit))).toBe(await fingerprintOf(modelFolder()));
  });

  it("stays the same when only the order of a lookup table's entries changes", async () => {
    const lookup = (table: string) =>
      replacing(
        '- { one_hot: merchant_category }',
        `- { one_hot: merchant_category }\n    - { lookup: merchant_category, table: ${table}, unknown: 0 }`,
      );
    const ordered = await fingerprintOf(modelFolder(lookup('{ grocery: 1, travel: 2 }')));
    expect(await fingerprintOf(modelFolder(lookup('{ travel: 2, grocery: 1 }')))).toBe(ordered);
    expect(await fingerprintOf(modelFolder(lookup('{ travel: 3, grocery: 1 }')))).not.toBe(ordered);
  });

  it.each([
    [
      'an input bound',
      replacing('time_since_last_txn: { type: number, minimum: 0', 'time_since_last_txn: { type: number, minimum: 1'),
    ],
    ['a preprocess transform', replacing('divide: 10', 'divide: 100')],
    ['a postprocess threshold', replacing('threshold: 0.7', 'threshold: 0.5')],
    ['the unknown-field policy', (y: string) => `${y}unknown_fields: ignore\n`],
  ])('changes when %s changes (a different answer is never served from the old entries)', async (_what, edit) => {
    expect(await fingerprintOf(modelFolder(edit))).not.toBe(await fingerprintOf(modelFolder()));
  });

  it('follows the model file it is given, byte for byte', async () => {
    const dir = modelFolder();
    const config = readModelConfig(dir);
    const original = join(dir, '1', 'model.onnx');
    const retrained = join(dir, '1', 'retrained.onnx');
    const bytes = readFileSync(original);
    bytes[bytes.length - 1] ^= 0x01;
    writeFileSync(retrained, bytes);
    expect(await answerFingerprint(config, retrained)).not.toBe(await answerFingerprint(config, original));
  });

  it('changes with the hook module source, read from the model folder', async () => {
    const gold = modelFolder((y) => `${y}hooks: ./hooks.mjs\n`, { 'hooks.mjs': hook('gold') });
    const gold2 = modelFolder((y) => `${y}hooks: ./hooks.mjs\n`, { 'hooks.mjs': hook('gold') });
    const blue = modelFolder((y) => `${y}hooks: ./hooks.mjs\n`, { 'hooks.mjs': hook('blue') });
    expect(await fingerprintOf(gold2)).toBe(await fingerprintOf(gold));
    expect(await fingerprintOf(blue)).not.toBe(await fingerprintOf(gold));
    // The same source under a different path is a different config, so a different fingerprint.
    const renamed = modelFolder((y) => `${y}hooks: ./other-hooks.mjs\n`, { 'other-hooks.mjs': hook('gold') });
    expect(await fingerprintOf(renamed)).not.toBe(await fingerprintOf(gold));
    // Editing the hook in place changes it too.
    writeFileSync(join(gold, 'hooks.mjs'), hook('green'));
    expect(await fingerprintOf(gold)).not.toBe(await fingerprintOf(gold2));
  });

  it('is still given when the hook module is missing, and differs once the module appears', async () => {
    const dir = modelFolder((y) => `${y}hooks: ./hooks.mjs\n`);
    const missing = await fingerprintOf(dir);
    expect(missing).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(await fingerprintOf(dir)).toBe(missing);
    writeFileSync(join(dir, 'hooks.mjs'), hook('gold'));
    expect(await fingerprintOf(dir)).not.toBe(missing);
  });
});
