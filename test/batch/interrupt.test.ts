import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { fraudModelDir, tempRoot } from './batch-fixtures.ts';

const ROWS = 300_000;
const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-interrupt');
let model: string;
let input: string;

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  input = await generateFraudData({ rows: ROWS, out: join(root.dir, 'in.parquet'), seed: 12 });
});

afterAll(() => root.remove());

/** A part file being written: the hidden temporary of its COPY (`.part-….parquet.tmp-PID-HEX`). */
const writing = (dir: string): boolean =>
  existsSync(dir) && readdirSync(dir).some((f) => f.startsWith('.part-') && f.includes('.tmp-'));

/**
 * Starts `caliper batch`, sends SIGINT the moment a part's COPY is running (its temporary exists), and resolves with
 * the exit code, or 'hung' when the process has not exited 30 s later (it is then killed).
 */
async function interruptMidWrite(run: number): Promise<{ code: number | null | 'hung'; stderr: string }> {
  const output = join(root.dir, `interrupted-${run}.parquet`);
  const partsDir = `${output}.parts`;
  const child = spawn(
    process.execPath,
    [CLI, 'batch', '--model', model, '--input', input, '--output', output, '--chunk-rows', '5000', '--json'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (!writing(partsDir)) {
    if (child.exitCode !== null)
      throw new Error(`batch exited before a part was written (${child.exitCode}): ${stderr}`);
    if (Date.now() > deadline) throw new Error('no part write seen within 60 s');
    await new Promise((r) => setTimeout(r, 1));
  }
  child.kill('SIGINT');
  const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
  if (code === 'hung') {
    child.kill('SIGKILL');
    await exited;
  }
  return { code, stderr };
}

describe('Ctrl-C while a part is being written', () => {
  it('exits with 130 and says where the job stopped, every time (the COPY in flight is finished first, not left waiting on the exiting thread)', async () => {
    for (let run = 0; run < 3; run++) {
      const { code, stderr } = await interruptMidWrite(run);
      expect(code, stderr).toBe(130);
      expect(stderr).toMatch(/interrupted; [\d,]+ rows \(\d+ parts\) are committed in /);
      // --chunk-rows: parts are committed as they go, and a rerun continues after them (not the one-pass message).
      expect(stderr).toMatch(/Run the same command again to resume after them, or add --overwrite to start over\./);
      expect(stderr).not.toMatch(/starts it over|before anything was committed/);
    }
  }, 240_000);
});
