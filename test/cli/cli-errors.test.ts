import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const bin = join(import.meta.dirname, '../../bin/caliper.js');
const elsewhere = mkdtempSync(join(tmpdir(), 'caliper-cli-'));
afterAll(() => rmSync(elsewhere, { recursive: true, force: true }));

/** The real CLI in its own process, from a folder outside the repository. */
async function caliper(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec('node', [bin, ...args], { cwd: elsewhere });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('npm warn'));

describe('CLI errors are one line with a non-zero exit', () => {
  it.each([
    [['bench', '--url', 'http://127.0.0.1:1'], /required option '--model/],
    [['tune', '--model', '.', '--p99-ms', 'abc'], /--p99-ms: expected a positive number, got "abc"/],
    [['bench', '--url', 'http://127.0.0.1:1', '--model', 'm', '--concurrency', 'x'], /--concurrency/],
    [['doctor', '--model', '.', '--p99-ms', '5'], /give the load as exactly one of --rate RPS or --concurrency N/],
    [['doctor', '--model', '.', '--p99-ms', '5', '--rate', '10', '--remedies', 'magic'], /--remedies: unknown magic/],
    [
      ['doctor', '--model', '.', '--p99-ms', '5', '--rate', '10', '--margin', '0.5'],
      /--margin: expected a factor of the load >= 1, got 0\.5/,
    ],
    [['serve'], /nothing to serve: give a model folder.*\(the default \.\/examples is not here\)/],
  ])('caliper %s', async (args, reason) => {
    const { code, stderr } = await caliper(...args);
    expect(code).not.toBe(0);
    expect(lines(stderr)).toHaveLength(1);
    expect(stderr).toMatch(reason);
  });
});
