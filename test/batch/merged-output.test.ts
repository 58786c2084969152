import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { fraudModelDir, tempRoot } from './batch-fixtures.ts';

const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const ROWS = 1_500;
const root = tempRoot('batch-merge');
let model: string;
let input: string;

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  input = await generateFraudData({ rows: ROWS, out: join(root.dir, 'in.csv'), seed: 31 });
});
afterAll(() => root.remove());

describe('a single CSV or JSONL output merged from many parts', () => {
  for (const format of ['jsonl', 'csv'] as const) {
    it(`${format}: 15 parts merge into one file in order, with no MaxListenersExceededWarning on stderr`, () => {
      const output = join(root.dir, `scored.${format}`);
      const run = spawnSync(
        process.execPath,
        [CLI, 'batch', '--model', model, '--input', input, '--output', output, '--chunk-rows', '100', '--json'],
        { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } },
      );
      expect(run.status, run.stderr).toBe(0);
      expect(run.stderr).not.toMatch(/MaxListenersExceededWarning|memory leak/);
      expect(JSON.parse(run.stdout)).toMatchObject({ rows: ROWS, outputRows: ROWS });
      const lines = readFileSync(output, 'utf8').trimEnd().split('\n');
      expect(lines).toHaveLength(format === 'csv' ? ROWS + 1 : ROWS);
      const ids =
        format === 'csv'
          ? lines.slice(1).map((l) => Number(l.split(',')[lines[0]!.split(',').indexOf('transaction_id')]))
          : lines.map((l) => (JSON.parse(l) as { transaction_id: number }).transaction_id);
      expect(ids).toEqual(Array.from({ length: ROWS }, (_, i) => i));
      expect(existsSync(`${output}.parts`)).toBe(false);
    });
  }

  it('killed with -9 while merging: the rerun finishes, and the output folder holds no temporary of the merge', async () => {
    const rows = 200_000;
    const big = await generateFraudData({ rows, out: join(root.dir, 'big.csv'), seed: 32 });
    const folder = join(root.dir, 'killed-merge');
    mkdirSync(folder);
    const output = join(folder, 'scored.jsonl');
    const args = [
      CLI,
      'batch',
      '--model',
      model,
      '--input',
      big,
      '--output',
      output,
      '--chunk-rows',
      '20000',
      '--json',
    ];
    const temporaries = (): string[] => readdirSync(folder).filter((f) => f.includes('.tmp-'));
    // Frozen while the merged file is half written (tried again if a run merges between two looks), then killed.
    let caught = false;
    for (let attempt = 0; attempt < 5 && !caught; attempt++) {
      const child = spawn(process.execPath, [...args, ...(attempt > 0 ? ['--overwrite'] : [])], { stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      while (child.exitCode === null && child.signalCode === null) {
        if (temporaries().length > 0) {
          child.kill('SIGSTOP');
          caught = temporaries().length > 0;
          child.kill(caught ? 'SIGKILL' : 'SIGCONT');
          if (caught) break;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      await exited;
    }
    expect(caught, 'the merge was never caught half written').toBe(true);
    const rerun = spawnSync(process.execPath, args, { encoding: 'utf8' });
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ rows, outputRows: rows });
    expect(readdirSync(folder).sort()).toEqual(['scored.jsonl']);
  }, 240_000);
});
