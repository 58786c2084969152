import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { splitCsvInHalves } from '../../src/batch/io/csv-halves.ts';
import type { CsvDialect } from '../../src/batch/io/input-scan.ts';
import { batchWithHalves, fraudModelDir, type HalvesRun, query, tempRoot } from './batch-fixtures.ts';

/**
 * A large plain CSV input is scored by two single-threaded COPYs side by side, one per half of the file, their outputs
 * joined end to end (src/batch/columnar/scoring-copy.ts, src/batch/io/csv-halves.ts). CALIPER_BATCH_HALVES_BYTES=1
 * makes every test file "large"; 'off' is the one COPY each test compares with.
 */
const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-csv-halves');
let model: string;
let input: string;

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  // 20,000 rows: about 5 vectors of 2048 rows in each half.
  input = await generateFraudData({ rows: 20_000, out: join(root.dir, 'fraud.csv'), seed: 41 });
});

afterAll(() => root.remove());

const batch = (args: string[], halves: 'on' | 'off' | 'default', env: NodeJS.ProcessEnv = {}): HalvesRun =>
  batchWithHalves(model, args, halves, env);

const temporaries = (dir: string): string[] => readdirSync(dir).filter((f) => f.includes('.tmp-'));

describe('a CSV input scored in two halves side by side', () => {
  it('CSV → CSV: the same bytes as one COPY and as the parts path, every row once and in input order', async () => {
    const halves = join(root.dir, 'halves.csv');
    const one = join(root.dir, 'one.csv');
    const parts = join(root.dir, 'parts.csv');
    const run = batch(['--input', input, '--output', halves], 'on');
    expect(run.halves).toBe(true);
    expect(run.summary).toMatchObject({ rows: 20_000, outputRows: 20_000, errors: 0, path: 'one-pass' });
    expect(batch(['--input', input, '--output', one], 'off').halves).toBe(false);
    expect(batch(['--input', input, '--output', parts, '--chunk-rows', '6000'], 'off').summary.path).toBe('parts');
    const text = readFileSync(halves, 'utf8');
    expect(text).toBe(readFileSync(one, 'utf8'));
    expect(text).toBe(readFileSync(parts, 'utf8'));
    // One header, then the input's rows in the input's order (transaction_id is the row's position).
    expect(text.split('\n').filter((l) => l.startsWith('transaction_id,'))).toHaveLength(1);
    const [order] = await query(
      `SELECT count(*)::INTEGER AS n, count(*) FILTER (WHERE transaction_id <> position)::INTEGER AS misplaced FROM (SELECT transaction_id, row_number() OVER () - 1 AS position FROM read_csv('${halves}'))`,
    );
    expect(order).toEqual({ n: 20_000, misplaced: 0 });
    expect(temporaries(root.dir)).toEqual([]);
  }, 120_000);

  it('CSV → JSONL: the same lines as one COPY', () => {
    const halves = join(root.dir, 'halves.jsonl');
    const one = join(root.dir, 'one.jsonl');
    expect(batch(['--input', input, '--output', halves], 'on').halves).toBe(true);
    batch(['--input', input, '--output', one], 'off');
    expect(readFileSync(halves, 'utf8')).toBe(readFileSync(one, 'utf8'));
  }, 120_000);

  it('CSV → Parquet is one COPY (two Parquet files cannot be joined end to end)', () => {
    const run = batch(['--input', input, '--output', join(root.dir, 'out.parquet')], 'on');
    expect(run).toMatchObject({ halves: false, summary: { rows: 20_000, path: 'one-pass' } });
  }, 120_000);

  it('a quote before the middle (a quoted field may hold a line end): one COPY, the same bytes as the parts path', () => {
    const quoted = join(root.dir, 'quoted.csv');
    const lines = ['note,transaction_id,transaction_amount,merchant_category,time_since_last_txn'];
    for (let i = 0; i < 6_000; i++)
      lines.push(`${i === 10 ? '"two\nlines"' : 'n'},${i},${(i % 97) + 1},fuel,${i % 50}`);
    writeFileSync(quoted, `${lines.join('\n')}\n`);
    const halves = join(root.dir, 'quoted-halves.csv');
    const parts = join(root.dir, 'quoted-parts.csv');
    expect(batch(['--input', quoted, '--output', halves], 'on')).toMatchObject({
      halves: false,
      summary: { rows: 6_000, path: 'one-pass' },
    });
    batch(['--input', quoted, '--output', parts, '--chunk-rows', '2500'], 'off');
    expect(readFileSync(halves, 'utf8')).toBe(readFileSync(parts, 'utf8'));
    expect(temporaries(root.dir)).toEqual([]);
  }, 120_000);

  it('a bad row in the second half: the job keeps the parts path, the row numbered in the whole file', () => {
    const dirty = join(root.dir, 'dirty.csv');
    const lines = ['transaction_id,transaction_amount,merchant_category,time_since_last_txn'];
    for (let i = 0; i < 8_000; i++) lines.push(`${i},${(i % 97) + 1},grocery,${i % 50}`);
    lines[7_001] = '7000,12,casino,10'; // not in the enum
    writeFileSync(dirty, `${lines.join('\n')}\n`);
    const output = join(root.dir, 'dirty-scored.csv');
    expect(batch(['--input', dirty, '--output', output], 'on')).toMatchObject({
      halves: true,
      summary: { rows: 8_000, outputRows: 7_999, errors: 1, path: 'parts' },
    });
    const errors = readFileSync(`${output}.errors.jsonl`, 'utf8').trimEnd().split('\n');
    expect(errors.map((l) => (JSON.parse(l) as { row: number }).row)).toEqual([7_001]);
    expect(temporaries(root.dir)).toEqual([]);
  }, 120_000);
});

describe('halves only with a core to spare', () => {
  it('a CSV over the size threshold, every core busy with other processes: one COPY', async () => {
    // 300,000 rows: about 8.5 MB, over the default 8 MiB threshold.
    const large = await generateFraudData({ rows: 300_000, out: join(root.dir, 'large.csv'), seed: 43 });
    expect(statSync(large).size).toBeGreaterThan(8 << 20);
    const spinners = cpus().map(() =>
      spawn(process.execPath, ['-e', 'const end = Date.now() + 60000; while (Date.now() < end);'], { stdio: 'ignore' }),
    );
    try {
      // Once the spinners run (they start within a few hundred ms).
      await new Promise((r) => setTimeout(r, 500));
      const run = batch(['--input', large, '--output', join(root.dir, 'large-busy.csv')], 'default');
      expect(run).toMatchObject({ halves: false, summary: { rows: 300_000, path: 'one-pass' } });
    } finally {
      for (const spinner of spinners) spinner.kill('SIGKILL');
    }
    // The same file with the threshold given: halves whatever the load.
    const forced = batch(['--input', large, '--output', join(root.dir, 'large-forced.csv')], 'on');
    expect(forced.halves).toBe(true);
    expect(readFileSync(join(root.dir, 'large-forced.csv'), 'utf8')).toBe(
      readFileSync(join(root.dir, 'large-busy.csv'), 'utf8'),
    );
  }, 120_000);
});

describe('a half that fails stops the other', () => {
  it("a value the sniffed type refuses just past the cut: the decline names it, not the other half's interruption", () => {
    const late = join(root.dir, 'late-text.csv');
    const lines = ['transaction_id,transaction_amount,merchant_category,time_since_last_txn'];
    for (let i = 0; i < 60_000; i++) lines.push(`${100_000 + i},${(i % 97) + 1},grocery,${i % 50}`);
    let text = `${lines.join('\n')}\n`;
    // The first row of the second half (splitCsvInHalves' cut): its id, sniffed BIGINT from the file's start, made
    // text of the same length, so the cut stays put; the first half is still being scored when the second fails.
    const cut = text.indexOf('\n', Math.floor(text.length / 2)) + 1;
    text = `${text.slice(0, cut)}T${text.slice(cut + 1)}`;
    writeFileSync(late, text);
    const halves = batch(['--input', late, '--output', join(root.dir, 'late-halves.csv')], 'on');
    expect(halves).toMatchObject({ halves: true, summary: { rows: 60_000, outputRows: 60_000, path: 'parts' } });
    // The reason may span lines (DuckDB's error): from the decline to the path it keeps.
    const declined = /\[batch\] one pass declined \(([\s\S]*?)\): scoring in parts/.exec(halves.stderr)?.[1];
    expect(declined).toContain('Could not convert string "T');
    expect(declined).not.toContain('Interrupted');
    batch(['--input', late, '--output', join(root.dir, 'late-one.csv')], 'off');
    expect(readFileSync(join(root.dir, 'late-halves.csv'), 'utf8')).toBe(
      readFileSync(join(root.dir, 'late-one.csv'), 'utf8'),
    );
    expect(temporaries(root.dir)).toEqual([]);
  }, 120_000);
});

describe('the halves read what one COPY reads', () => {
  it("a line over DuckDB's 2,000,000-byte limit past the sniffed rows, in the second half: one COPY's outcome", () => {
    const long = join(root.dir, 'long-line.csv');
    const lines = ['transaction_id,transaction_amount,merchant_category,time_since_last_txn,note'];
    // Row 45,000 of 60,000: past the sniffer's 20,480 rows (a long line there fails the sniff, then every path alike).
    for (let i = 0; i < 60_000; i++)
      lines.push(`${i},${(i % 97) + 1},grocery,${i % 50},${i === 45_000 ? 'x'.repeat(3_000_000) : 'n'}`);
    writeFileSync(long, `${lines.join('\n')}\n`);
    const run = (halves: 'on' | 'off') =>
      spawnSync(
        process.execPath,
        [
          CLI,
          'batch',
          '--model',
          model,
          '--overwrite',
          '--input',
          long,
          '--output',
          join(root.dir, `long-${halves}.csv`),
        ],
        {
          encoding: 'utf8',
          env: {
            ...process.env,
            CALIPER_BATCH_PROFILE: '1',
            CALIPER_BATCH_HALVES_BYTES: halves === 'on' ? '1' : 'off',
          },
        },
      );
    const one = run('off');
    const halves = run('on');
    expect(halves.stderr).toContain('scoring copy in two halves');
    // One COPY refuses the line (the parts path too): the job fails, naming the file, in halves as well.
    expect(one.status).toBe(1);
    expect(halves.status).toBe(one.status);
    const reason = (r: typeof one) => r.stderr.split('\n').find((l) => l.startsWith('caliper: '));
    expect(reason(one)).toContain(`${long}: cannot read as CSV`);
    expect(reason(halves)).toBe(reason(one));
    expect(temporaries(root.dir)).toEqual([]);
  }, 120_000);
});

/**
 * Runs `caliper batch` with its output in a tmpfs of `bytes` mounted for it alone (a private mount namespace: as root,
 * else in a user namespace; see privateMount). Returns the exit status, stderr, the summary, the output's bytes and the
 * names left in the tmpfs.
 */
function batchOnSmallDisk(bytes: number, args: string[], halves: 'on' | 'off', output = 'out.csv') {
  const disk = join(root.dir, `disk-${halves}-${output}`);
  const result = join(root.dir, `disk-${halves}-${output}-result`);
  mkdirSync(disk, { recursive: true });
  mkdirSync(result, { recursive: true });
  const script = [
    `mount -t tmpfs -o size=${bytes} tmpfs "$1" || exit 97`,
    'shift 2',
    '"$@"; rc=$?',
    `cp "${disk}/${output}" "${result}/${output}" 2>/dev/null`,
    `ls -A "${disk}" > "${result}/left.txt"`,
    'exit $rc',
  ].join('\n');
  const command = [process.execPath, CLI, 'batch', '--model', model, '--json', '--output', join(disk, output)];
  const env = { ...process.env, CALIPER_BATCH_PROFILE: '1', CALIPER_BATCH_HALVES_BYTES: halves === 'on' ? '1' : 'off' };
  const run = spawnSync('unshare', [...privateMount!, 'sh', '-c', script, 'sh', disk, result, ...command, ...args], {
    encoding: 'utf8',
    env,
  });
  expect(run.status, run.stderr).not.toBe(97);
  return {
    status: run.status,
    stderr: run.stderr,
    summary: run.status === 0 ? (JSON.parse(run.stdout.trim().split('\n').pop()!) as HalvesRun['summary']) : undefined,
    output: existsSync(join(result, output)) ? readFileSync(join(result, output)) : undefined,
    left: readFileSync(join(result, 'left.txt'), 'utf8').split('\n').filter(Boolean),
  };
}

/** unshare's namespaces that let this process mount a tmpfs of its own (none where neither is allowed). */
const privateMount = [['--mount'], ['--user', '--map-root-user', '--mount']].find(
  (namespaces) =>
    spawnSync('unshare', [...namespaces, 'sh', '-c', 'mount -t tmpfs -o size=4096 tmpfs /mnt'], { stdio: 'ignore' })
      .status === 0,
);

describe('halves on a disk with room for one COPY only', () => {
  it.skipIf(privateMount === undefined)(
    'the halves do not fit where the output does: one COPY writes it, every row once, nothing left behind',
    async () => {
      const csv = await generateFraudData({ rows: 100_000, out: join(root.dir, 'disk.csv'), seed: 47 });
      const one = join(root.dir, 'disk-one.csv');
      batch(['--input', csv, '--output', one], 'off');
      const inputBytes = statSync(csv).size;
      const outputBytes = statSync(one).size;
      // Room for the output and for the halves' free-space rule (twice the input), not for the halves' files: their
      // copies of the input and both halves' outputs at once.
      const room = Math.max(outputBytes, 2 * inputBytes) + 256 * 1024;
      expect(room).toBeLessThan(inputBytes + outputBytes);
      const off = batchOnSmallDisk(room, ['--input', csv], 'off');
      expect(off.status, off.stderr).toBe(0);
      const run = batchOnSmallDisk(room, ['--input', csv], 'on');
      expect(run.stderr).toContain('scoring copy in two halves');
      expect(run.status, run.stderr).toBe(0);
      expect(run.stderr).toContain('the halves could not be written');
      // The rows the halves scored before the failure are not counted again.
      expect(run.summary).toMatchObject({ rows: 100_000, outputRows: 100_000, errors: 0, path: 'one-pass' });
      expect(run.output?.equals(readFileSync(one))).toBe(true);
      expect(run.left).toEqual(['out.csv']);
    },
    120_000,
  );

  it.skipIf(privateMount === undefined)(
    'Parquet halves: where joining the outputs finds no room, one COPY writes the file',
    async () => {
      const generated = await generateFraudData({ rows: 100_000, out: join(root.dir, 'disk-in.parquet'), seed: 53 });
      const parquet = join(root.dir, 'disk.parquet');
      await query(`COPY (FROM '${generated}') TO '${parquet}' (FORMAT parquet, ROW_GROUP_SIZE 20000)`);
      const one = join(root.dir, 'disk-one.parquet');
      batch(['--input', parquet, '--output', one], 'off', { CALIPER_BATCH_STITCH: 'off' });
      // Room for the output, not for both halves' outputs and the second appended to the first, nor for the input's
      // copy and the prediction files of a stitched output (parquet-stitch.ts).
      const room = statSync(one).size + 256 * 1024;
      const run = batchOnSmallDisk(room, ['--input', parquet], 'on', 'out.parquet');
      expect(run.stderr).toContain('scoring copy in two halves');
      expect(run.status, run.stderr).toBe(0);
      // The input's copy and the prediction files would not fit either: refused before anything is scored.
      expect(run.stderr).toContain('[batch] every column rewritten: less room beside the output than twice the input');
      expect(run.stderr).not.toContain('could not be stitched');
      expect(run.stderr).toContain('the halves could not be written');
      expect(run.summary).toMatchObject({ rows: 100_000, outputRows: 100_000, errors: 0, path: 'one-pass' });
      expect(run.output?.equals(readFileSync(one))).toBe(true);
      expect(run.left).toEqual(['out.parquet']);
    },
    120_000,
  );
});

describe('splitCsvInHalves', () => {
  const dialect = (newLine: string, quote = '"'): CsvDialect => ({ options: '', skip: 0, quote, newLine });
  const halves = (name: string, text: string, d: CsvDialect, minBytes = 1) => {
    const path = join(root.dir, name);
    writeFileSync(path, text);
    const first = `${path}.1`;
    const second = `${path}.2`;
    const cut = splitCsvInHalves(path, d, first, second, minBytes);
    return {
      cut,
      first: existsSync(first) ? readFileSync(first, 'utf8') : undefined,
      second: existsSync(second) ? readFileSync(second, 'utf8') : undefined,
    };
  };

  it('cuts after the first line end at or past the middle byte, every byte in one half', () => {
    const text = 'h\naaaa\nbbbb\ncccc\ndddd\n';
    const { cut, first, second } = halves('lf.csv', text, dialect('\\n'));
    expect(first! + second!).toBe(text);
    expect(first).toBe('h\naaaa\nbbbb\n');
    expect(cut).toEqual({ first: expect.any(String), second: expect.any(String), cut: first!.length });
  });

  it('CRLF: the cut falls after the \\r\\n', () => {
    const { first, second } = halves('crlf.csv', 'h\r\naaaa\r\nbbbb\r\ncccc\r\n', dialect('\\r\\n'));
    expect(first).toBe('h\r\naaaa\r\nbbbb\r\n');
    expect(second).toBe('cccc\r\n');
  });

  it('declines, leaving nothing: a quote before the cut, a lone \\r line end, no line end past the middle, a small file', () => {
    expect(halves('quote.csv', 'h\n"a\nb"\ncccc\ndddd\n', dialect('\\n'))).toEqual({
      cut: undefined,
      first: undefined,
      second: undefined,
    });
    expect(halves('cr.csv', 'h\raaaa\rbbbb\r', dialect('\\r')).cut).toBeUndefined();
    expect(halves('one-line.csv', 'h\naaaaaaaaaaaaaaaaaaaa', dialect('\\n'))).toEqual({
      cut: undefined,
      first: undefined,
      second: undefined,
    });
    expect(halves('small.csv', 'h\naaaa\nbbbb\n', dialect('\\n'), 1 << 20).cut).toBeUndefined();
  });

  it('declines where the halves folder has less than twice the file free', () => {
    const path = join(root.dir, 'room.csv');
    const text = 'h\naaaa\nbbbb\ncccc\n';
    writeFileSync(path, text);
    const cut = (free: number) => splitCsvInHalves(path, dialect('\\n'), `${path}.1`, `${path}.2`, 1, () => free);
    expect(cut(2 * text.length - 1)).toBeUndefined();
    expect(existsSync(`${path}.1`)).toBe(false);
    expect(cut(2 * text.length)?.cut).toBe('h\naaaa\nbbbb\n'.length);
  });

  it('a quote after the cut does not matter (the cut is outside any quoted field)', () => {
    const { first, second } = halves('late-quote.csv', 'h\naaaa\nbbbb\n"c,c"\n', dialect('\\n'));
    expect(first).toBe('h\naaaa\nbbbb\n');
    expect(second).toBe('"c,c"\n');
  });
});
