import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyBytes } from '../../src/batch/io/file-bytes.ts';
import { tempRoot } from './batch-fixtures.ts';

/** copyBytes (src/batch/io/file-bytes.ts) over real files, across its 256 KiB chunks. */
const root = tempRoot('file-bytes');
afterAll(() => root.remove());

// 1 MiB + 4,099 bytes of a pattern with no period near the chunk size: a byte out of place shows.
const source = join(root.dir, 'source.bin');
const bytes = Buffer.from(Array.from({ length: (1 << 20) + 4_099 }, (_, i) => (i * 7 + (i >> 9)) & 0xff));
writeFileSync(source, bytes);

function withFiles<T>(target: string, flags: string, use: (from: number, to: number) => T): T {
  const from = openSync(source, 'r');
  const to = openSync(target, flags);
  try {
    return use(from, to);
  } finally {
    closeSync(from);
    closeSync(to);
  }
}

const ended = (at: number): Error => new Error(`ended at ${at}`);

describe('copyBytes', () => {
  it('a range spanning several chunks, written at a position, byte for byte', () => {
    const target = join(root.dir, 'at.bin');
    writeFileSync(target, Buffer.alloc(100, 0xee));
    const [from, to, at] = [13, bytes.length - 5, 40];
    expect(withFiles(target, 'r+', (s, t) => copyBytes(s, from, to, t, at, ended))).toBe(true);
    const out = readFileSync(target);
    expect(out.length).toBe(at + to - from);
    expect(out.subarray(0, at).equals(Buffer.alloc(at, 0xee))).toBe(true);
    expect(out.subarray(at).equals(bytes.subarray(from, to))).toBe(true);
  });

  it('appended at the end of a file opened to append (no position)', () => {
    const target = join(root.dir, 'append.bin');
    writeFileSync(target, 'head');
    withFiles(target, 'a', (s, t) => copyBytes(s, 0, bytes.length, t, null, ended));
    expect(readFileSync(target).equals(Buffer.concat([Buffer.from('head'), bytes]))).toBe(true);
  });

  it('each chunk seen in order before it is written; stopped where `accept` answers false', () => {
    const target = join(root.dir, 'accept.bin');
    const seen: number[] = [];
    const copied = withFiles(target, 'w', (s, t) =>
      copyBytes(s, 0, bytes.length, t, 0, ended, (chunk) => {
        seen.push(chunk.length);
        return seen.length < 3;
      }),
    );
    expect(copied).toBe(false);
    expect(seen.length).toBe(3);
    // The first two chunks written, the third not.
    expect(readFileSync(target).equals(bytes.subarray(0, seen[0]! + seen[1]!))).toBe(true);
  });

  it('a source shorter than the range: throws `ended` at the first byte missing', () => {
    const target = join(root.dir, 'short.bin');
    expect(() => withFiles(target, 'w', (s, t) => copyBytes(s, 10, bytes.length + 500, t, 0, ended))).toThrow(
      `ended at ${bytes.length}`,
    );
  });
});
