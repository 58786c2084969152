/*
 * What the serving benchmarks (bench/serving.ts, bench/fraud-cpu.ts) serve and send: model folders made from an
 * example with model.yaml lines replaced, and the request sets they send (bench/serving.ts, bench/fraud-cpu.ts): 512 varied fraud transactions
 * and 64 distinct Fashion-MNIST images (the example's sample with 5% of its pixels changed), the same in every run
 * so two runs and two checkouts meet the same requests; varied so the response cache never answers.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RequestData } from '../src/bench/request-data.ts';

/** Deterministic pseudo-random numbers in [0, 1) (a 32-bit linear congruential generator, Numerical Recipes' constants). */
function lcg(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 0x1_0000_0000;
  };
}

const CATEGORIES = ['grocery', 'electronics', 'travel', 'gaming', 'fuel', 'restaurant', 'jewelry', 'online'];

/** 512 fraud_detector /predict bodies: amount 0–5,000.00, one of eight categories, 0–86,400 s since the last one. */
export function fraudRequests(): RequestData {
  const random = lcg(7);
  return {
    source: 'generated',
    documents: Array.from({ length: 512 }, () => ({
      transaction_amount: Math.round(random() * 500_000) / 100,
      merchant_category: CATEGORIES[Math.floor(random() * CATEGORIES.length)]!,
      time_since_last_txn: Math.round(random() * 86_400),
    })),
  };
}

/** 64 fashion_mnist /predict bodies (784 pixels 0–255 each) from `root`/examples/fashion-mnist/sample-request.json. */
export function fashionRequests(root: string): RequestData {
  const sample = JSON.parse(readFileSync(join(root, 'examples/fashion-mnist/sample-request.json'), 'utf8')) as {
    pixels: number[];
  };
  const random = lcg(11);
  return {
    source: 'generated',
    documents: Array.from({ length: 64 }, () => ({
      pixels: sample.pixels.map((v) => (random() < 0.05 ? Math.floor(random() * 256) : v)),
    })),
  };
}

/**
 * A model repository `dataDir`/`variant` holding version 1 of `root`/examples/`example` as model `name`, its model.yaml
 * with each top-level `key: …` line of `replace` replaced (or appended). Returns the repository folder.
 */
export function exampleModelFolder(
  root: string,
  dataDir: string,
  variant: string,
  example: string,
  name: string,
  replace: Record<string, string>,
): string {
  const repo = join(dataDir, variant);
  const dir = join(repo, name);
  rmSync(repo, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(root, 'examples', example, '1'), join(dir, '1'), { recursive: true });
  let yaml = readFileSync(join(root, 'examples', example, 'model.yaml'), 'utf8');
  for (const [key, value] of Object.entries(replace)) {
    const line = new RegExp(`^${key}:.*$`, 'm');
    yaml = line.test(yaml) ? yaml.replace(line, `${key}: ${value}`) : `${yaml}\n${key}: ${value}\n`;
  }
  writeFileSync(join(dir, 'model.yaml'), yaml);
  return repo;
}
