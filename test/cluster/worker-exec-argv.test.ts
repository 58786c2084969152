import { describe, expect, it } from 'vitest';
import { WORKER_MIN_SEMI_SPACE_MB, workerExecArgv } from '../../src/cluster/worker-exec-argv.ts';

describe('workerExecArgv (the Node.js options a cluster worker starts with)', () => {
  it('adds a 16 MB minimum young generation to the primary’s own options, after them', () => {
    expect(WORKER_MIN_SEMI_SPACE_MB).toBe(16);
    expect(workerExecArgv([])).toEqual(['--min-semi-space-size=16']);
    expect(workerExecArgv(['--inspect=0', '--enable-source-maps'])).toEqual([
      '--inspect=0',
      '--enable-source-maps',
      '--min-semi-space-size=16',
    ]);
  });

  it('returns a new array and leaves the primary’s untouched', () => {
    const execArgv = ['--enable-source-maps'];
    const out = workerExecArgv(execArgv);
    expect(execArgv).toEqual(['--enable-source-maps']);
    expect(out).not.toBe(execArgv);
    const chosen = ['--max-semi-space-size=64'];
    expect(workerExecArgv(chosen)).not.toBe(chosen);
  });

  it('leaves a young-generation size the user chose on node’s command line as given', () => {
    expect(workerExecArgv(['--max-semi-space-size=64'])).toEqual(['--max-semi-space-size=64']);
    expect(workerExecArgv(['--min-semi-space-size=4', '--inspect'])).toEqual(['--min-semi-space-size=4', '--inspect']);
    expect(workerExecArgv(['--min_semi_space_size=2'])).toEqual(['--min_semi_space_size=2']);
    expect(workerExecArgv(['--max-semi-space-size', '32'])).toEqual(['--max-semi-space-size', '32']);
  });

  it('leaves a size chosen in NODE_OPTIONS to it (Node allows only the maximum there)', () => {
    expect(workerExecArgv([], '--max-semi-space-size=8')).toEqual([]);
    expect(workerExecArgv(['--inspect'], '--enable-source-maps  --max_semi_space_size=8')).toEqual(['--inspect']);
    expect(workerExecArgv([], '')).toEqual(['--min-semi-space-size=16']);
    expect(workerExecArgv([], '--max-old-space-size=4096')).toEqual(['--min-semi-space-size=16']);
  });

  it('is not fooled by other options that mention the semi-space', () => {
    expect(workerExecArgv(['--semi-space-growth-factor=4'])).toEqual([
      '--semi-space-growth-factor=4',
      '--min-semi-space-size=16',
    ]);
    expect(workerExecArgv(['--max-semi-space-size-x=1'])).toEqual([
      '--max-semi-space-size-x=1',
      '--min-semi-space-size=16',
    ]);
    expect(workerExecArgv(['x--max-semi-space-size=1'])).toEqual([
      'x--max-semi-space-size=1',
      '--min-semi-space-size=16',
    ]);
  });
});
