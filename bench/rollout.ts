/**
 * Registry and rollout benchmark.
 *   1. Canary split: weight 0.10, 10,000 requests without routing keys and 10,000 with a distinct key each;
 *      the share answered by the canary version must land within ±2 points of 10%.
 *   2. Shadow cost: caller latency (mean, p50, p90, p99) with shadow mirroring 100% and 10% of requests vs no
 *      shadow; one request at a time on a kept-alive connection, settings interleaved per round (none, 100%,
 *      10%, none, ...) so machine noise lands on all three alike.
 * Usage: node --import tsx bench/rollout.ts [--rounds 20] [--per-round 200]
 */
import autocannon from 'autocannon';
import { Agent, request as httpRequest } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { decodeModel, encodeModel } from '../src/optimize/onnx/model-io.ts';
import { ModelRegistry } from '../src/registry/model-registry.ts';
import { startServing } from '../src/server/serving.ts';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const rounds = arg('rounds', 20);
const perRound = arg('per-round', 200);

const BODY = JSON.stringify({ transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 30 });
const dir = mkdtempSync(join(tmpdir(), 'caliper-rollout-bench-'));
const registry = ModelRegistry.open(join(dir, 'home'));
const variant = join(dir, 'v2.onnx');
const model = decodeModel(readFileSync('examples/fraud-detector/1/model.onnx'));
model.docString = 'bench variant';
writeFileSync(variant, encodeModel(model));
await registry.register({
  file: 'examples/fraud-detector/1/model.onnx',
  configFile: 'examples/fraud-detector/model.yaml',
  name: 'fraud',
});
await registry.register({ file: variant, configFile: 'examples/fraud-detector/model.yaml', name: 'fraud' });
await registry.setStage('fraud', 1, 'Production');

const server = await startServing({
  paths: [],
  modelUris: ['models:/fraud/Production'],
  registry: registry.home,
  port: 0,
  logger: pino({ level: 'silent' }),
});
const follower = server.follower!;
const setTraffic = async (canary: number, shadow: number): Promise<void> => {
  await follower.registry.setTraffic('fraud', {
    ...(canary > 0 ? { canary: { target: { kind: 'version', version: 2 }, weight: canary } } : {}),
    ...(shadow > 0 ? { shadow: { target: { kind: 'version', version: 2 }, fraction: shadow } } : {}),
  });
  await follower.sync();
};

async function canaryShare(
  keyed: boolean,
): Promise<{ requests: number; canary: number; share: number; non2xx: number }> {
  let canary = 0;
  let total = 0;
  let counter = 0;
  const result = await autocannon({
    url: `${server.url}/models/fraud/predict`,
    connections: 8,
    ...({
      amount: 10_000,
      requests: [
        {
          method: 'POST',
          body: BODY,
          setupRequest: (request: { headers: Record<string, string> }) => {
            request.headers = {
              'content-type': 'application/json',
              ...(keyed ? { 'x-caliper-routing-key': `user-${counter++}` } : {}),
            };
            return request;
          },
          onResponse: (_status: number, body: string) => {
            total++;
            if (body.includes('"model_version":"2"')) canary++;
          },
        },
      ],
    } as object),
  });
  return { requests: total, canary, share: canary / total, non2xx: result.non2xx };
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const url = new URL(`${server.url}/models/fraud/predict`);

/** One request at a time over a kept-alive connection, timed with performance.now(): the caller's latency, no queueing. */
let sequence = 0;
function oneRequest(): Promise<number> {
  // A different amount each time, so the response cache never answers and both versions really run.
  const body = JSON.stringify({
    transaction_amount: 1 + (sequence++ % 1_000_000) / 7,
    merchant_category: 'travel',
    time_since_last_txn: 30,
  });
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = httpRequest(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        response.resume();
        response.on('end', () =>
          response.statusCode === 200
            ? resolve(performance.now() - started)
            : reject(new Error(`status ${response.statusCode}`)),
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

async function latencyRun(requests: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < requests; i++) samples.push(await oneRequest());
  return samples;
}

await setTraffic(0.1, 0);
const canaryRandom = await canaryShare(false);
const canaryKeyed = await canaryShare(true);
console.log(
  `canary 10%: random ${(canaryRandom.share * 100).toFixed(2)}%, keyed ${(canaryKeyed.share * 100).toFixed(2)}% of 10,000`,
);

const settings = [
  { label: 'none', shadow: 0 },
  { label: 'shadow-100', shadow: 1 },
  { label: 'shadow-10', shadow: 0.1 },
];
const samples: Record<string, number[]> = { none: [], 'shadow-100': [], 'shadow-10': [] };
await setTraffic(0, 0);
await latencyRun(500); // warm-up
for (let round = 0; round < rounds; round++) {
  for (const s of settings) {
    await setTraffic(0, s.shadow);
    samples[s.label]!.push(...(await latencyRun(perRound)));
  }
}
const shadowStats = server.repository.get('fraud').traffic?.shadow?.stats;
const summary = (label: string) => {
  const sorted = [...samples[label]!].sort((a, b) => a - b);
  return {
    requests: sorted.length,
    meanMs: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    p50Ms: percentile(sorted, 0.5),
    p90Ms: percentile(sorted, 0.9),
    p99Ms: percentile(sorted, 0.99),
  };
};
const base = summary('none');
const ratios = Object.fromEntries(
  ['shadow-100', 'shadow-10'].map((label) => {
    const s = summary(label);
    return [
      label,
      {
        ...s,
        meanRatio: s.meanMs / base.meanMs,
        p50Ratio: s.p50Ms / base.p50Ms,
        p90Ratio: s.p90Ms / base.p90Ms,
        p99Ratio: s.p99Ms / base.p99Ms,
      },
    ];
  }),
);
const report = {
  machine: `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), shared, no GPU`,
  command: `node --import tsx bench/rollout.ts --rounds ${rounds} --per-round ${perRound}`,
  canary: {
    weight: 0.1,
    random: canaryRandom,
    keyed: canaryKeyed,
    withinTwoPoints: Math.abs(canaryRandom.share - 0.1) <= 0.02 && Math.abs(canaryKeyed.share - 0.1) <= 0.02,
  },
  shadow: {
    method: 'sequential keep-alive client, settings interleaved per round',
    rounds,
    perRound,
    baseline: base,
    ...ratios,
    lastShadowStats: shadowStats,
  },
};
console.log(JSON.stringify({ canary: report.canary, shadow: { baseline: base, ...ratios } }, null, 2));
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/rollout.json', `${JSON.stringify(report, null, 2)}\n`);
await server.close();
await registry.close();
rmSync(dir, { recursive: true, force: true });
