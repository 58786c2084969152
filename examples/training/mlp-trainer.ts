/*
 * A small dense-network trainer (ReLU hidden layers, Adam, softmax or sigmoid head) used by the example
 * training scripts. Plain TypeScript so the examples rebuild anywhere with no native or downloaded parts;
 * it skips zero inputs, which makes image data (mostly background) cheap.
 */

import { mulberry32 } from '../../src/system/seeded-random.ts';

export class SeededRandom {
  private readonly uniform: () => number;
  constructor(seed: number) {
    this.uniform = mulberry32(seed);
  }
  /** Uniform in [0, 1) (mulberry32). */
  next(): number {
    return this.uniform();
  }
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

export interface DenseLayer {
  inputs: number;
  outputs: number;
  weights: Float32Array;
  bias: Float32Array;
}

export type Head = 'softmax' | 'sigmoid';

export class Mlp {
  readonly layers: DenseLayer[];
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private step = 0;

  constructor(
    readonly sizes: number[],
    readonly head: Head,
    random: SeededRandom,
  ) {
    this.layers = sizes.slice(1).map((outputs, i) => {
      const inputs = sizes[i]!;
      const scale = Math.sqrt(2 / inputs);
      const weights = Float32Array.from({ length: inputs * outputs }, () => random.normal() * scale);
      return { inputs, outputs, weights, bias: new Float32Array(outputs) };
    });
    this.m = this.layers.flatMap((l) => [new Float32Array(l.weights.length), new Float32Array(l.bias.length)]);
    this.v = this.layers.flatMap((l) => [new Float32Array(l.weights.length), new Float32Array(l.bias.length)]);
  }

  /** Forward pass over a batch; returns every layer's activations (the last holds logits). */
  forward(x: Float32Array, rows: number): Float32Array[] {
    const activations = [x];
    this.layers.forEach((layer, li) => {
      const input = activations[li]!;
      const out = new Float32Array(rows * layer.outputs);
      for (let r = 0; r < rows; r++) {
        const o = r * layer.outputs;
        out.set(layer.bias, o);
        for (let i = 0; i < layer.inputs; i++) {
          const xi = input[r * layer.inputs + i]!;
          if (xi === 0) continue;
          const w = i * layer.outputs;
          for (let j = 0; j < layer.outputs; j++) out[o + j]! += xi * layer.weights[w + j]!;
        }
      }
      if (li < this.layers.length - 1) for (let k = 0; k < out.length; k++) if (out[k]! < 0) out[k] = 0;
      activations.push(out);
    });
    return activations;
  }

  /** Class probabilities (softmax) or the probability of the positive class (sigmoid). */
  predict(x: Float32Array, rows: number): Float32Array {
    const logits = this.forward(x, rows).at(-1)!;
    const width = this.sizes.at(-1)!;
    const out = new Float32Array(logits.length);
    for (let r = 0; r < rows; r++) {
      if (this.head === 'sigmoid') {
        out[r] = 1 / (1 + Math.exp(-logits[r]!));
        continue;
      }
      let max = -Infinity;
      for (let j = 0; j < width; j++) max = Math.max(max, logits[r * width + j]!);
      let sum = 0;
      for (let j = 0; j < width; j++) sum += out[r * width + j] = Math.exp(logits[r * width + j]! - max);
      for (let j = 0; j < width; j++) out[r * width + j]! /= sum;
    }
    return out;
  }

  /** One Adam step on a batch; labels are class indices (softmax) or 0/1 (sigmoid). Returns the mean loss. */
  trainBatch(x: Float32Array, labels: ArrayLike<number>, rows: number, learningRate: number): number {
    const activations = this.forward(x, rows);
    const probs = this.predict(x, rows);
    const width = this.sizes.at(-1)!;
    let grad = new Float32Array(rows * width);
    let loss = 0;
    for (let r = 0; r < rows; r++) {
      if (this.head === 'sigmoid') {
        const p = probs[r]!;
        const y = labels[r]!;
        loss -= y * Math.log(p + 1e-7) + (1 - y) * Math.log(1 - p + 1e-7);
        grad[r] = (p - y) / rows;
      } else {
        const y = labels[r]!;
        loss -= Math.log(probs[r * width + y]! + 1e-7);
        for (let j = 0; j < width; j++) grad[r * width + j] = (probs[r * width + j]! - (j === y ? 1 : 0)) / rows;
      }
    }
    this.step++;
    for (let li = this.layers.length - 1; li >= 0; li--) {
      const layer = this.layers[li]!;
      const input = activations[li]!;
      const gw = new Float32Array(layer.weights.length);
      const gb = new Float32Array(layer.bias.length);
      const gx = li > 0 ? new Float32Array(rows * layer.inputs) : undefined;
      for (let r = 0; r < rows; r++) {
        const g = r * layer.outputs;
        for (let j = 0; j < layer.outputs; j++) gb[j]! += grad[g + j]!;
        for (let i = 0; i < layer.inputs; i++) {
          const xi = input[r * layer.inputs + i]!;
          const w = i * layer.outputs;
          if (xi !== 0) for (let j = 0; j < layer.outputs; j++) gw[w + j]! += xi * grad[g + j]!;
          if (gx && xi > 0) {
            let s = 0;
            for (let j = 0; j < layer.outputs; j++) s += layer.weights[w + j]! * grad[g + j]!;
            gx[r * layer.inputs + i] = s;
          }
        }
      }
      this.adam(2 * li, layer.weights, gw, learningRate);
      this.adam(2 * li + 1, layer.bias, gb, learningRate);
      if (gx) grad = gx;
    }
    return loss / rows;
  }

  private adam(slot: number, params: Float32Array, grads: Float32Array, lr: number): void {
    const m = this.m[slot]!;
    const v = this.v[slot]!;
    const b1 = 0.9;
    const b2 = 0.999;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    for (let k = 0; k < params.length; k++) {
      const g = grads[k]!;
      m[k] = b1 * m[k]! + (1 - b1) * g;
      v[k] = b2 * v[k]! + (1 - b2) * g * g;
      params[k]! -= (lr * (m[k]! / c1)) / (Math.sqrt(v[k]! / c2) + 1e-8);
    }
  }
}

/** Shuffled mini-batch order for one epoch. */
export function shuffledIndices(count: number, random: SeededRandom): Int32Array {
  const order = Int32Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
