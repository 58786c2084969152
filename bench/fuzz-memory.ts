/**
 * Memory after hostile input: is the RSS a server keeps after a fuzzing run retained memory, or memory V8 and the
 * allocator do not give back? A server (bench/fuzz-memory-server.ts, --expose-gc) takes `--rounds` rounds of
 * `--bodies` fuzzed REST bodies each (mutated /predict and v2 infer documents, wrong types, deep nesting, unknown
 * and multi-megabyte field names, invalid JSON, wrong content types; about 1 in 20 bodies 1–7 MB), 8 at a time.
 * After each round: RSS, V8 heap used/total, external and array buffers, then the same after a full GC.
 * Retained memory grows round after round and survives GC; a high-water mark holds flat from round 2 on while
 * heap used after GC returns to its start.
 * Usage: node --import tsx bench/fuzz-memory.ts [--rounds 3] [--bodies 1600] [--seed 7]
 * Writes bench/results/fuzz-memory.json.
 */
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { mulberry32 } from '../src/system/seeded-random.ts';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const rounds = arg('rounds', 3);
const bodiesPerRound = arg('bodies', 1600);
/** Seeded: the same bodies on every run. */
const random = mulberry32(arg('seed', 7));
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const bigString = (): string => 'x'.repeat(Math.floor((1 + random() * 6) * 1024 * 1024));

const VALID = { transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 30 };
const HOSTILE_VALUES: (() => unknown)[] = [
  () => null,
  () => -1,
  () => 1e38 * 10,
  () => 'NaN',
  () => [],
  () => ({}),
  () => '🙂'.repeat(1000),
  () => Array.from({ length: 1000 }, () => random()),
  () => JSON.parse(`${'['.repeat(500)}1${']'.repeat(500)}`) as unknown,
];

interface FuzzRequest {
  path: string;
  contentType: string;
  body: string;
}

/** One fuzzed request: about 1 in 20 is a body of 1–7 MB, the rest small. */
function fuzzedRequest(): FuzzRequest {
  const large = random() < 0.05;
  const kind = Math.floor(random() * 8);
  const predict = '/models/fraud_detector/predict';
  const infer = '/v2/models/fraud_detector/infer';
  switch (kind) {
    case 0: {
      const doc: Record<string, unknown> = { ...VALID };
      doc[pick(Object.keys(VALID))] = pick(HOSTILE_VALUES)();
      return { path: predict, contentType: 'application/json', body: JSON.stringify(doc) };
    }
    case 1: // an unknown field, its name possibly megabytes long
      return {
        path: predict,
        contentType: 'application/json',
        body: JSON.stringify({ ...VALID, [large ? bigString() : `f${Math.floor(random() * 1e6)}`]: 1 }),
      };
    case 2: // deep nesting in v2 data
      return {
        path: infer,
        contentType: 'application/json',
        body: `{"inputs":[{"name":"features","datatype":"FP32","shape":[1,10],"data":${'['.repeat(large ? 100_000 : 2_000)}1${']'.repeat(large ? 100_000 : 2_000)}}]}`,
      };
    case 3: // v2 with wrong shapes, datatypes, out-of-range values, a long input name
      return {
        path: infer,
        contentType: 'application/json',
        body: JSON.stringify({
          inputs: [
            {
              name: large ? bigString() : pick(['features', 'x', '__proto__']),
              datatype: pick(['FP32', 'INT32', 'BYTES', 'FP64', 'BOGUS']),
              shape: pick([[1, 10], [2, 10], [-1], [1e9, 1e9], [1, 10, 1]]),
              data: Array.from({ length: large ? 500_000 : 10 }, () => pick([1e39, 0.5, -3, 'a', null, true])),
            },
          ],
        }),
      };
    case 4: // a batch of documents, some broken
      return {
        path: predict,
        contentType: 'application/json',
        body: JSON.stringify(
          Array.from({ length: large ? 50_000 : 20 }, (_, i) => (i % 7 === 3 ? { ...VALID, extra: i } : VALID)),
        ),
      };
    case 5: // not JSON at all
      return {
        path: pick([predict, infer]),
        contentType: 'application/json',
        body: large ? bigString() : `{"transaction_amount": 1, ${'"'.repeat(Math.floor(random() * 50))}`,
      };
    case 6: // prototype keys
      return {
        path: predict,
        contentType: 'application/json',
        body: `{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}},"transaction_amount":1}`,
      };
    default: // wrong content type
      return {
        path: predict,
        contentType: pick(['application/octet-stream', 'text/plain', 'application/x-www-form-urlencoded']),
        body: large ? bigString() : JSON.stringify(VALID),
      };
  }
}

type Usage = NodeJS.MemoryUsage;
const child = fork(join(import.meta.dirname, 'fuzz-memory-server.ts'), [], {
  execArgv: ['--expose-gc', '--import', 'tsx'],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
const url = await new Promise<string>((resolve) =>
  child.on('message', (m: { kind: string; url?: string }) => {
    if (m.kind === 'ready') resolve(m.url!);
  }),
);
const memory = (kind: 'memory' | 'gc'): Promise<Usage> =>
  new Promise((resolve) => {
    const listener = (m: { kind: string; usage?: Usage }): void => {
      if (m.kind !== 'memory') return;
      child.off('message', listener);
      resolve(m.usage!);
    };
    child.on('message', listener);
    child.send({ kind });
  });

const statuses = new Map<number, number>();
async function round(): Promise<number> {
  let sent = 0;
  let bytes = 0;
  const worker = async (): Promise<void> => {
    while (sent < bodiesPerRound) {
      sent++;
      const request = fuzzedRequest();
      bytes += request.body.length;
      try {
        const response = await fetch(`${url}${request.path}`, {
          method: 'POST',
          headers: { 'content-type': request.contentType },
          body: request.body,
        });
        await response.arrayBuffer();
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      } catch {
        statuses.set(0, (statuses.get(0) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return bytes;
}

const mb = (n: number): number => Math.round((n / 1024 / 1024) * 10) / 10;
const row = (label: string, u: Usage) => ({
  label,
  rssMB: mb(u.rss),
  heapUsedMB: mb(u.heapUsed),
  heapTotalMB: mb(u.heapTotal),
  externalMB: mb(u.external),
  arrayBuffersMB: mb(u.arrayBuffers),
});
// A few valid requests first, so the start is a warmed server, not a cold one.
for (let i = 0; i < 50; i++)
  await (
    await fetch(`${url}/models/fraud_detector/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(VALID),
    })
  ).arrayBuffer();
const rows = [row('start', await memory('memory')), row('start, after GC', await memory('gc'))];
for (let r = 1; r <= rounds; r++) {
  const bytes = await round();
  rows.push(row(`after round ${r} (${bodiesPerRound} bodies, ${mb(bytes)} MB sent)`, await memory('memory')));
  rows.push(row(`after round ${r}, after GC`, await memory('gc')));
}
child.send({ kind: 'close' });
const result = {
  date: new Date().toISOString(),
  loadavg: loadavg().map((l) => Math.round(l * 100) / 100),
  node: process.version,
  rounds,
  bodiesPerRound,
  statuses: Object.fromEntries([...statuses.entries()].sort((a, b) => a[0] - b[0])),
  rows,
};
console.table(rows);
console.log(`statuses: ${JSON.stringify(result.statuses)}; load average ${result.loadavg.join(', ')}`);
mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
writeFileSync(join(import.meta.dirname, 'results', 'fuzz-memory.json'), `${JSON.stringify(result, null, 2)}\n`);
