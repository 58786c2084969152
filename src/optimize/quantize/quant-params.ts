/*
 * Quantization arithmetic shared by the quantizers, following the ONNX QuantizeLinear definition:
 * q = saturate(round_half_to_even(x / scale) + zero_point).
 */

/** Round half to even, as QuantizeLinear rounds. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function quantizeValue(x: number, scale: number, zeroPoint: number, qmin: number, qmax: number): number {
  const q = roundHalfEven(x / scale) + zeroPoint;
  return q < qmin ? qmin : Math.min(q, qmax);
}

/** Signed weight range: full int8 uses ±127 (symmetric); reduced range uses 7 bits so u8×s8 pairs cannot overflow int16 on CPUs without VNNI. */
export function int8WeightRange(reduceRange: boolean): { qmin: number; qmax: number } {
  return reduceRange ? { qmin: -64, qmax: 63 } : { qmin: -127, qmax: 127 };
}

export interface QuantizedWeights {
  values: Int8Array;
  /** One scale per tensor, or one per channel along `axis`. */
  scales: Float32Array;
  axis?: number;
}

/**
 * Symmetric int8 quantization of a weight tensor (zero point 0). With `axis`, each slice along that
 * axis gets its own scale (per-channel). A slice of zeros gets scale 1 so dequantization stays exact.
 */
export function quantizeWeightsSymmetric(
  values: Float32Array,
  dims: readonly number[],
  reduceRange: boolean,
  axis?: number,
): QuantizedWeights {
  const { qmin, qmax } = int8WeightRange(reduceRange);
  const channels = axis === undefined ? 1 : dims[axis]!;
  const inner = axis === undefined ? values.length : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channelOf = (i: number) => (axis === undefined ? 0 : Math.floor(i / inner) % channels);
  const maxAbs = new Float32Array(channels);
  for (let i = 0; i < values.length; i++) {
    const c = channelOf(i);
    const a = Math.abs(values[i]!);
    if (a > maxAbs[c]!) maxAbs[c] = a;
  }
  const scales = Float32Array.from(maxAbs, (m) => (m > 0 ? m / qmax : 1));
  const out = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = quantizeValue(values[i]!, scales[channelOf(i)]!, 0, qmin, qmax);
  return axis === undefined ? { values: out, scales } : { values: out, scales, axis };
}

/** Asymmetric uint8 parameters covering [min, max] (the range always includes 0, so zero is exact). */
export function uint8Params(min: number, max: number, reduceRange = false): { scale: number; zeroPoint: number } {
  const qmax = reduceRange ? 127 : 255;
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  if (hi === lo) return { scale: 1, zeroPoint: 0 };
  const scale = (hi - lo) / qmax;
  const zeroPoint = Math.min(qmax, Math.max(0, roundHalfEven(-lo / scale)));
  return { scale, zeroPoint };
}
