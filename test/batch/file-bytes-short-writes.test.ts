import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it, vi } from 'vitest';

/**
 * copyBytes (src/batch/io/file-bytes.ts) where the kernel takes fewer bytes than asked: POSIX allows a short write
 * without an error, which a local disk here never gives, so writeSync is wrapped to take at most 1,000 bytes a call.
 */
vi.mock('node:fs', async (original) => {
  const fs = await original<typeof import('node:fs')>();
  const short = (
    fd: number,
    buffer: NodeJS.ArrayBufferView,
    offset?: number,
    length?: number,
    position?: number | null,
  ) => fs.writeSync(fd, buffer, offset, Math.min(length ?? buffer.byteLength, 1_000), position);
  return { ...fs, default: { ...fs, writeSync: short }, writeSync: short };
});

const { copyBytes } = await import('../../src/batch/io/file-bytes.ts');
const dir = mkdtempSync(join(tmpdir(), 'caliper-file-bytes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('copyBytes with short writes', () => {
  it('writes every byte where it belongs, at an offset and appended', () => {
    const bytes = Buffer.alloc(600_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) % 251;
    writeFileSync(join(dir, 'source'), bytes);
    writeFileSync(join(dir, 'target'), Buffer.from('head'));
    const source = openSync(join(dir, 'source'), 'r');
    const target = openSync(join(dir, 'target'), 'r+');
    const appended = openSync(join(dir, 'appended'), 'a');
    try {
      const ended = (at: number) => new Error(`ended at ${at}`);
      expect(copyBytes(source, 100, 600_000, target, 4, ended)).toBe(true);
      expect(copyBytes(source, 0, 600_000, appended, null, ended)).toBe(true);
    } finally {
      for (const fd of [source, target, appended]) closeSync(fd);
    }
    expect(readFileSync(join(dir, 'target')).equals(Buffer.concat([Buffer.from('head'), bytes.subarray(100)]))).toBe(
      true,
    );
    expect(readFileSync(join(dir, 'appended')).equals(bytes)).toBe(true);
  });
});
