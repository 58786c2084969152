import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fraudModelDir, tempRoot } from './batch-fixtures.ts';

/**
 * `caliper batch` with --output in a folder it may not write (src/batch/io/output-layout.ts, prepare): Node's recursive
 * mkdir reported the read-only file system as "ENOENT: no such file or directory, mkdir '…/out.csv.parts/_caliper'"
 * for a folder that exists. The folder is made read-only by a bind mount in a private mount namespace (as root, else
 * in a user namespace); where neither may be made, the test is skipped.
 */
const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-readonly-output');
let model: string;
let input: string;
let readonly: string;

/** unshare's namespaces in which this process may bind-mount a folder read-only (none where neither is allowed). */
const privateMount = [['--mount'], ['--user', '--map-root-user', '--mount']].find((namespaces) => {
  const dir = join(root.dir, 'probe');
  mkdirSync(dir, { recursive: true });
  const script = `mount --bind "${dir}" "${dir}" && mount -o remount,ro,bind "${dir}"`;
  return spawnSync('unshare', [...namespaces, 'sh', '-c', script], { stdio: 'ignore' }).status === 0;
});

beforeAll(() => {
  model = fraudModelDir(root.dir);
  input = join(root.dir, 'in.csv');
  writeFileSync(
    input,
    'transaction_id,transaction_amount,merchant_category,time_since_last_txn\n0,12.5,grocery,30\n1,80,travel,4000\n',
  );
  readonly = join(root.dir, 'readonly');
  mkdirSync(readonly);
});

afterAll(() => root.remove());

/** `caliper batch … --output OUTPUT` with `readonly` mounted read-only for that process alone. */
function batchReadOnly(output: string) {
  const script = `mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" || exit 97; shift; exec "$@"`;
  const command = [process.execPath, CLI, 'batch', '--model', model, '--input', input, '--output', output];
  const run = spawnSync('unshare', [...privateMount!, 'sh', '-c', script, 'sh', readonly, ...command], {
    encoding: 'utf8',
  });
  expect(run.status, run.stderr).not.toBe(97);
  return run;
}

describe('an --output folder that cannot be written', () => {
  it.skipIf(privateMount === undefined)(
    'names the folder and why, for a file, a file in new folders, a folder',
    () => {
      for (const output of ['out.csv', 'new/deeper/out.csv', 'parts-dir/']) {
        const run = batchReadOnly(join(readonly, output));
        expect(run.status).toBe(1);
        expect(run.stderr).toContain(`--output: cannot write in ${readonly} (a read-only file system)`);
        expect(run.stderr).not.toContain('ENOENT');
      }
      expect(readdirSync(readonly)).toEqual([]);
    },
    60_000,
  );
});
