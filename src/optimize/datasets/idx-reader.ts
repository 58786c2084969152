import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/** An IDX array (the MNIST file format): unsigned bytes with their dimensions. */
export interface IdxArray { dims: number[]; data: Uint8Array }

const UNSIGNED_BYTE = 0x08;

/** Reads an IDX file (optionally .gz). Only the unsigned-byte element type, which MNIST-family data uses. */
export function readIdxFile(path: string): IdxArray {
  let bytes: Uint8Array = readFileSync(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) throw new Error(`${path} is not an IDX file (bad magic number)`);
  if (bytes[2] !== UNSIGNED_BYTE) throw new Error(`${path}: IDX element type 0x${bytes[2]!.toString(16)} is not supported (expected 0x08, unsigned byte)`);
  const rank = bytes[3]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const offset = 4 + 4 * rank;
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - offset < count) throw new Error(`${path}: truncated IDX file (expected ${count} values, found ${bytes.length - offset})`);
  return { dims, data: bytes.subarray(offset, offset + count) };
}

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_LABELS = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

/** Fashion-MNIST from Debian's dataset-fashion-mnist: images [N, 784] as bytes, labels [N]. */
export function readFashionMnist(split: 'train' | 't10k', dir = FASHION_MNIST_DIR): { images: Uint8Array; labels: Uint8Array; count: number } {
  const images = readIdxFile(`${dir}/${split}-images-idx3-ubyte.gz`);
  const labels = readIdxFile(`${dir}/${split}-labels-idx1-ubyte.gz`);
  if (images.dims[0] !== labels.dims[0]) throw new Error(`fashion-mnist ${split}: ${images.dims[0]} images but ${labels.dims[0]} labels`);
  return { images: images.data, labels: labels.data, count: labels.dims[0]! };
}
