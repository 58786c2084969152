import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { fraudModelDir, tempRoot } from './batch-fixtures.ts';

const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-profile');

afterAll(() => root.remove());

/** `[batch] LABEL: W ms wall, C ms CPU…` lines of CALIPER_BATCH_PROFILE=1, by label. */
function phases(stderr: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const match of stderr.matchAll(/^\[batch\] (.+?): (\d+) ms wall, (\d+) ms CPU(.*)$/gm)) {
    const lines = found.get(match[1]!) ?? [];
    lines.push(match[0]);
    found.set(match[1]!, lines);
  }
  return found;
}

describe('CALIPER_BATCH_PROFILE=1: where a job assembled at the end spends its time', () => {
  it('prints the streamed read once (its chunk waits added up), each part scored and written, and the assembling COPY', async () => {
    const input = await generateFraudData({ rows: 6000, out: join(root.dir, 'in.csv'), seed: 31 });
    const args = [
      CLI,
      'batch',
      '--model',
      fraudModelDir(root.dir),
      '--input',
      input,
      '--output',
      join(root.dir, 'scored.csv'),
      '--chunk-rows',
      '2500',
      '--json',
      '--no-progress',
    ];
    const run = spawnSync(process.execPath, args, {
      encoding: 'utf8',
      env: { ...process.env, CALIPER_BATCH_PROFILE: '1' },
    });
    expect(run.status, run.stderr).toBe(0);
    const found = phases(run.stderr);
    // Three parts of at most 2500 rows: each scored, then its predictions written.
    expect(found.get('score part')).toHaveLength(3);
    expect(found.get('write predictions')).toHaveLength(3);
    expect(found.get('finalize')).toHaveLength(1);
    // The read is one line for the whole file, with the number of chunk fetches it adds up (2048-row chunks and the
    // final empty fetch).
    const read = found.get('read fields (streamed)');
    expect(read).toHaveLength(1);
    expect(read![0]).toMatch(/over 4 steps/);

    const quiet = spawnSync(process.execPath, [...args, '--overwrite'], { encoding: 'utf8' });
    expect(quiet.status, quiet.stderr).toBe(0);
    expect(phases(quiet.stderr).size).toBe(0);
  }, 60_000);
});
