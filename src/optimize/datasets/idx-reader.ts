import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Dataset } from './dataset-shape.ts';

/** An IDX array (the MNIST file format): unsigned bytes with their dimensions. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const UNSIGNED_BYTE = 0x08;

/** Reads an IDX file (optionally .gz). Only the unsigned-byte element type, which MNIST-family data uses. */
export function readIdxFile(path: string): IdxArray {
  let bytes: Uint8Array = readFileSync(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0)
    throw new Error(`${path} is not an IDX file (bad magic number)`);
  if (bytes[2] !== UNSIGNED_BYTE)
    throw new Error(
      `${path}: IDX element type 0x${bytes[2]!.toString(16)} is not supported (expected 0x08, unsigned byte)`,
    );
  const rank = bytes[3]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const offset = 4 + 4 * rank;
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - offset < count)
    throw new Error(`${path}: truncated IDX file (expected ${count} values, found ${bytes.length - offset})`);
  return { dims, data: bytes.subarray(offset, offset + count) };
}

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_LABELS = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

/** Fashion-MNIST from Debian's dataset-fashion-mnist: images [N, 784] as bytes, labels [N]. */
export function readFashionMnist(
  split: 'train' | 't10k',
  dir = FASHION_MNIST_DIR,
): { images: Uint8Array; labels: Uint8Array; count: number } {
  const images = readIdxFile(`${dir}/${split}-images-idx3-ubyte.gz`);
  const labels = readIdxFile(`${dir}/${split}-labels-idx1-ubyte.gz`);
  if (images.dims[0] !== labels.dims[0])
    throw new Error(`fashion-mnist ${split}: ${images.dims[0]} images but ${labels.dims[0]} labels`);
  return { images: images.data, labels: labels.data, count: labels.dims[0]! };
}

/** Finds the images and labels files of an IDX data set given `fashion-mnist:SPLIT`, a directory or the images file. */
function idxFiles(path: string): { images: string; labels?: string } {
  const split = /^fashion-mnist:(train|t10k)$/.exec(path);
  if (split)
    return {
      images: `${FASHION_MNIST_DIR}/${split[1]}-images-idx3-ubyte.gz`,
      labels: `${FASHION_MNIST_DIR}/${split[1]}-labels-idx1-ubyte.gz`,
    };
  if (statSync(path).isDirectory()) {
    const entries = readdirSync(path);
    const images = entries.find((e) => /images-idx3-ubyte(\.gz)?$/.test(e));
    if (!images) throw new Error(`${path} holds no *-images-idx3-ubyte[.gz] file`);
    const prefix = images.replace(/images-idx3-ubyte(\.gz)?$/, '');
    const labels = entries.find((e) => e.startsWith(prefix) && /labels-idx1-ubyte(\.gz)?$/.test(e));
    return { images: join(path, images), ...(labels ? { labels: join(path, labels) } : {}) };
  }
  const labels = path.replace('images-idx3', 'labels-idx1');
  return labels !== path && existsSync(labels) ? { images: path, labels } : { images: path };
}

/** An IDX images file (+ labels) as a data set; pixels scaled to [0, 1], each sample flattened. */
export function readIdxDataset(path: string): Dataset {
  const files = idxFiles(path);
  const images = readIdxFile(files.images);
  const count = images.dims[0] ?? 0;
  const featureShape = images.dims.slice(1);
  const features = new Float32Array(images.data.length);
  for (let i = 0; i < features.length; i++) features[i] = images.data[i]! / 255;
  const dataset: Dataset = {
    source: path,
    features,
    featureShape: [featureShape.reduce((a, b) => a * b, 1)],
    count,
    ...(featureShape.length >= 2 ? { images: true } : {}),
  };
  if (files.labels) {
    const labels = readIdxFile(files.labels);
    if (labels.dims[0] !== count) throw new Error(`${path}: ${count} images but ${labels.dims[0]} labels`);
    dataset.labels = Int32Array.from(labels.data);
  }
  return dataset;
}
