import { mulberry32 } from '../../system/seeded-random.ts';
import { invalidOption } from './distill-error.ts';

/** How one sample's flat values are laid out as an image: `channels` planes of `height` × `width`, channel-major. */
export interface ImageGeometry {
  channels: number;
  height: number;
  width: number;
}

/**
 * The image layout of a sample shape, for translation augmentation: [C, H, W] (channels first), [H, W], or a flat
 * [H·W] vector of a square single-channel image (Fashion-MNIST's [784] is 28 × 28). Throws
 * CALIPER_DISTILL_INVALID_OPTIONS naming `--augment-shift` when the shape is no image or the shift does not fit.
 */
export function imageGeometry(sampleShape: readonly number[], shift: number): ImageGeometry {
  let geometry: ImageGeometry | undefined;
  if (sampleShape.length === 3)
    geometry = { channels: sampleShape[0]!, height: sampleShape[1]!, width: sampleShape[2]! };
  else if (sampleShape.length === 2) geometry = { channels: 1, height: sampleShape[0]!, width: sampleShape[1]! };
  else if (sampleShape.length === 1) {
    const side = Math.round(Math.sqrt(sampleShape[0]!));
    if (side * side === sampleShape[0]) geometry = { channels: 1, height: side, width: side };
  }
  if (!geometry)
    throw invalidOption(
      `--augment-shift needs image samples ([C, H, W], [H, W] or a flat square H·W); the teacher takes samples of shape [${sampleShape.join(', ')}]`,
    );
  if (shift >= Math.min(geometry.height, geometry.width))
    throw invalidOption(
      `--augment-shift ${shift} does not fit ${geometry.height} × ${geometry.width} images: it must be below the smaller side`,
    );
  return geometry;
}

/**
 * Translates each of `rows` images in `batch` (flat, `geometry` per row) in place by its own random offset
 * (dy, dx), each uniform in [−most, most]; pixels moved in from outside are 0. `random` gives values in [0, 1)
 * (the same generator state gives the same offsets, so a distilled student and its baseline see the same inputs).
 */
export function shiftImages(
  batch: Float32Array,
  rows: number,
  geometry: ImageGeometry,
  most: number,
  random: () => number,
): void {
  const { channels, height, width } = geometry;
  const plane = height * width;
  const size = channels * plane;
  const copy = new Float32Array(size);
  for (let r = 0; r < rows; r++) {
    const dy = Math.floor(random() * (2 * most + 1)) - most;
    const dx = Math.floor(random() * (2 * most + 1)) - most;
    if (dy === 0 && dx === 0) continue;
    const image = batch.subarray(r * size, (r + 1) * size);
    copy.set(image);
    image.fill(0);
    for (let c = 0; c < channels; c++) {
      for (let y = Math.max(0, dy); y < Math.min(height, height + dy); y++) {
        const from = c * plane + (y - dy) * width;
        const to = c * plane + y * width;
        const x0 = Math.max(0, dx);
        const x1 = Math.min(width, width + dx);
        image.set(copy.subarray(from + x0 - dx, from + x1 - dx), to + x0);
      }
    }
  }
}

/** The offsets' generator for one epoch of one seed: the same for a distilled student and its hard-label twin. */
export function shiftRandom(seed: number, epoch: number): () => number {
  return mulberry32(seed * 104729 + epoch * 7919 + 17);
}
