import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { syntheticTransactions } from '../../../examples/fraud-detector/train.ts';
import { loadDataset } from '../../../src/optimize/datasets/dataset.ts';
import {
  DEFAULT_EPOCHS,
  DEFAULT_IMAGE_SHIFT,
  defaultAugmentShift,
  distillSettings,
} from '../../../src/optimize/distill/distill-options.ts';
import { distill } from '../../../src/optimize/distill/distiller.ts';
import { GraphBuilder, tensorFromArray } from '../../../src/optimize/onnx/graph-builder.ts';
import { encodeModel } from '../../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../../src/optimize/onnx/onnx-schema.ts';

const work = mkdtempSync(join(tmpdir(), 'caliper-distill-defaults-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const SIDE = 8;
const PIXELS = SIDE * SIDE;
const COUNT = 240;

/** A linear teacher on flat 8 × 8 images [N, 64]: class 0 sums columns 0–3, class 1 columns 4–7 (× 4). */
function halvesTeacher(): Uint8Array {
  const weights = new Float32Array(PIXELS * 2);
  for (let y = 0; y < SIDE; y++) for (let x = 0; x < SIDE; x++) weights[(y * SIDE + x) * 2 + (x < 4 ? 0 : 1)] = 4;
  const b = new GraphBuilder('halves-teacher', 17);
  const input = b.input({ name: 'pixels', elemType: TensorDataType.FLOAT, shape: ['N', PIXELS] });
  b.node(
    'Gemm',
    [
      input,
      b.initializer(tensorFromArray('w', [PIXELS, 2], weights)),
      b.initializer(tensorFromArray('b', [2], new Float32Array(2))),
    ],
    {},
    ['logits'],
  );
  b.output({ name: 'logits', elemType: TensorDataType.FLOAT, shape: ['N', 2] });
  return encodeModel(b.build());
}

/** Images with one lit pixel (255) each, at a pseudo-random place, labelled by the half it lies in. */
function litImages(): { pixels: Uint8Array; labels: Uint8Array } {
  const pixels = new Uint8Array(COUNT * PIXELS);
  const labels = new Uint8Array(COUNT);
  let state = 5;
  for (let i = 0; i < COUNT; i++) {
    state = (state * 48271) % 2147483647;
    const place = state % PIXELS;
    pixels[i * PIXELS + place] = 255;
    labels[i] = place % SIDE < 4 ? 0 : 1;
  }
  return { pixels, labels };
}

/** An IDX file (unsigned bytes) of `dims`. */
function idx(path: string, dims: number[], data: Uint8Array): void {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.set([0, 0, 0x08, dims.length]);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  writeFileSync(path, Buffer.concat([header, data]));
}

const { pixels, labels } = litImages();
const teacherPath = join(work, 'teacher.onnx');
writeFileSync(teacherPath, halvesTeacher());
// The same samples three ways: an IDX image file [N, 8, 8], an IDX matrix [N, 64] (not images), and a CSV of 64
// numeric columns (a square count: it could be read as 8 × 8, and must not be).
const imagesPath = join(work, 'lit-images-idx3-ubyte');
idx(imagesPath, [COUNT, SIDE, SIDE], pixels);
idx(join(work, 'lit-labels-idx1-ubyte'), [COUNT], labels);
const matrixPath = join(work, 'rows-images-idx3-ubyte');
idx(matrixPath, [COUNT, PIXELS], pixels);
idx(join(work, 'rows-labels-idx1-ubyte'), [COUNT], labels);
const csvPath = join(work, 'lit.csv');
writeFileSync(
  csvPath,
  `${[...Array.from({ length: PIXELS }, (_, i) => `p${i}`), 'label'].join(',')}\n${Array.from(
    { length: COUNT },
    (_, i) => `${Array.from(pixels.subarray(i * PIXELS, (i + 1) * PIXELS), (v) => v / 255).join(',')},${labels[i]}`,
  ).join('\n')}\n`,
);

function caliper(...args: string[]): { status: number | null; stderr: string; stdout: string } {
  const result = spawnSync(process.execPath, ['bin/caliper.js', 'distill', ...args], {
    encoding: 'utf8',
    timeout: 90_000,
  });
  return { status: result.status, stderr: result.stderr, stdout: result.stdout };
}

describe('distillation defaults', () => {
  it('trains 20 epochs with patience equal to the epochs unless told otherwise', () => {
    const base = { teacher: teacherPath, train: imagesPath, student: 'mlp:4' };
    expect(DEFAULT_EPOCHS).toBe(20);
    const defaults = distillSettings(base).settings;
    expect(defaults).toMatchObject({ epochs: 20, patience: 20, temperature: 1, alpha: 0.5, augmentShift: 0 });
    expect(distillSettings({ ...base, epochs: 7 }).settings).toMatchObject({ epochs: 7, patience: 7 });
    expect(distillSettings({ ...base, epochs: 7, patience: 2 }).settings).toMatchObject({ epochs: 7, patience: 2 });
    expect(distillSettings({ ...base, augmentShift: 3 }).settings.augmentShift).toBe(3);
  });

  it('shifts images by 1 px by default, and nothing else: not flat vectors of a square length, not [H, W] maps', () => {
    expect(DEFAULT_IMAGE_SHIFT).toBe(1);
    expect(defaultAugmentShift({ images: true }, [784])).toBe(1);
    expect(defaultAugmentShift({}, [1, 28, 28])).toBe(1);
    expect(defaultAugmentShift({}, [3, 32, 32])).toBe(1);
    expect(defaultAugmentShift({}, [784])).toBe(0);
    expect(defaultAugmentShift({}, [28, 28])).toBe(0);
    expect(defaultAugmentShift({}, [10])).toBe(0);
    expect(defaultAugmentShift({ images: false }, [64])).toBe(0);
  });

  it('IDX image files are read as images; an IDX matrix and a CSV are not', async () => {
    expect((await loadDataset(imagesPath)).images).toBe(true);
    expect((await loadDataset(matrixPath)).images).toBeUndefined();
    expect((await loadDataset(csvPath)).images).toBeUndefined();
  });

  it('a CSV of 64 numeric columns (a square count) is distilled without shifts, whatever its shape could be', async () => {
    const { report } = await distill({
      teacher: teacherPath,
      train: csvPath,
      student: 'mlp:4',
      epochs: 1,
      latencyBatchSizes: [],
    });
    expect(report.settings.augmentShift).toBe(0);
  });

  it('caliper distill on an IDX image file: 1-px shifts and the whole 20-epoch schedule, no early stop', () => {
    const out = join(work, 'student.onnx');
    const run = caliper(
      '--teacher',
      teacherPath,
      '--train',
      imagesPath,
      '--eval',
      imagesPath,
      '--student',
      'mlp:4',
      '--batch-size',
      '64',
      '--no-latency',
      '--json',
      '-o',
      out,
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const report = JSON.parse(run.stdout) as {
      settings: { epochs: number; patience: number; augmentShift: number };
      distilled: { epochs: unknown[] };
    };
    expect(report.settings).toMatchObject({ epochs: 20, patience: 20, augmentShift: 1 });
    // Patience 3 (the former default) stops this run early: the teacher's halves are learnt within a few epochs.
    expect(report.distilled.epochs).toHaveLength(20);
    const explicit = caliper(
      '--teacher',
      teacherPath,
      '--train',
      imagesPath,
      '--student',
      'mlp:4',
      '--epochs',
      '1',
      '--augment-shift',
      '0',
      '--no-latency',
      '--json',
      '-o',
      out,
    );
    expect(explicit.status).toBe(0);
    expect(JSON.parse(explicit.stdout).settings).toMatchObject({ epochs: 1, patience: 1, augmentShift: 0 });
  }, 120_000);

  it('caliper distill --model on the fraud example (tabular rows through model.yaml) never shifts', () => {
    const { transactions, labels: fraud } = syntheticTransactions(400, 31);
    const rows = join(work, 'fraud.csv');
    writeFileSync(
      rows,
      `transaction_amount,merchant_category,time_since_last_txn,is_fraud\n${transactions.map((t, i) => `${t.transaction_amount},${t.merchant_category},${t.time_since_last_txn},${fraud[i]}`).join('\n')}\n`,
    );
    const run = caliper(
      '--model',
      'examples/fraud-detector/1',
      '--train',
      rows,
      '--label',
      'is_fraud',
      '--student',
      'mlp:8',
      '--epochs',
      '2',
      '--no-latency',
      '--json',
      '-o',
      join(work, 'fraud-student.onnx'),
    );
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout).settings).toMatchObject({ epochs: 2, patience: 2, augmentShift: 0 });
  }, 120_000);
});
