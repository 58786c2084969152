/*
 * What the stage list costs per request (issue 15): the same /predict request answered by the runner
 * (runPredict → stageContext → runStages over src/pipeline/stage-list.ts, timing every stage) and by calling the same
 * stages directly in a hand-written sequence (schema.validate → preprocessor.run → scheduler.submit →
 * postprocessor.run, no context object, no timings).
 *   node --import tsx bench/stage-runner.ts [--rounds 5] [--requests 4000]
 * Two model set-ups, each request timed on its own, the two ways alternating request by request (medians of all
 * samples, so stalls from other processes on a shared machine hit both alike), one request at a time:
 *  - ort: the fraud example (no response cache) on ONNX Runtime in-thread, one job per request (no batching delay);
 *  - instant: the same version whose scheduler answers at once with outputs recorded from one real run, so the
 *    figure is the runner's own cost, not hidden in ONNX Runtime's noise.
 * Reports the median µs per request of both ways, their difference (the runner's cost) and their ratio.
 * Writes bench/results/stage-runner.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readModelConfig } from '../src/config/model-config-file.ts';
import { directSchedulerFactory, ModelVersion, type SchedulerFactory } from '../src/lifecycle/model-version.ts';
import { runPredict } from '../src/pipeline/predict-pipeline.ts';
import { BatchStatistics } from '../src/scheduler/batch-statistics.ts';
import type { InferenceResult, Scheduler } from '../src/scheduler/scheduler.ts';
import { fraudModelDir, tempRoot } from '../test/batch/batch-fixtures.ts';
import { median } from './interleaved-timing.ts';

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '5' }, requests: { type: 'string', default: '4000' } },
});
const ROUNDS = Number(args.rounds);
const REQUESTS = Number(args.requests);

const transaction = { transaction_amount: 250, merchant_category: 'travel', time_since_last_txn: 40 };

/** The stages of a one-object /predict request, called directly: what the runner walks, without it. */
async function direct(version: ModelVersion, body: unknown): Promise<unknown> {
  const row = version.schema.validate(body, '');
  const inputs = version.preprocessor.run([row], () => '');
  const result = await version.scheduler.submit({
    inputs,
    rows: 1,
    outputNames: version.postprocessor.outputNames,
  });
  return version.postprocessor.run(result.outputs, 1)[0];
}

async function runner(version: ModelVersion, body: unknown): Promise<unknown> {
  return (await runPredict(version, body)).predictions[0];
}

/**
 * Times each request on its own, the two ways alternating request by request (which goes first alternating too), so a
 * stall from another process hits single samples of both alike and the medians step over it. µs per request, all
 * samples, for each way.
 */
async function timePaired(version: ModelVersion, requests: number): Promise<{ runner: number[]; direct: number[] }> {
  const ways = { runner, direct } as const;
  const times = { runner: [] as number[], direct: [] as number[] };
  for (const way of Object.values(ways)) for (let i = 0; i < 500; i++) await way(version, { ...transaction });
  // The two ways answer the same.
  const [a, b] = [await runner(version, { ...transaction }), await direct(version, { ...transaction })];
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`answers differ: ${JSON.stringify([a, b])}`);
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < requests; i++) {
      const order = (i + round) % 2 ? (['direct', 'runner'] as const) : (['runner', 'direct'] as const);
      for (const name of order) {
        const body = { ...transaction };
        const start = process.hrtime.bigint();
        await ways[name](version, body);
        times[name].push(Number(process.hrtime.bigint() - start) / 1e3);
      }
    }
  }
  return times;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

/** Medians, the runner's cost (difference of medians) and the ratio; p25/p75 to show the spread. */
function summary(times: { runner: number[]; direct: number[] }) {
  const quantile = (values: number[], q: number): number => {
    const sorted = [...values].sort((x, y) => x - y);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  };
  const runnerUs = median(times.runner);
  const directUs = median(times.direct);
  return {
    runner_us: round2(runnerUs),
    direct_us: round2(directUs),
    runner_cost_us: round2(runnerUs - directUs),
    ratio: Math.round((runnerUs / directUs) * 1000) / 1000,
    runner_p25_p75_us: [round2(quantile(times.runner, 0.25)), round2(quantile(times.runner, 0.75))],
    direct_p25_p75_us: [round2(quantile(times.direct, 0.25)), round2(quantile(times.direct, 0.75))],
    samples_per_way: times.runner.length,
  };
}

async function main(): Promise<void> {
  const root = tempRoot('stage-runner-bench');
  const dir = fraudModelDir(root.dir);
  writeFileSync(join(dir, 'model.yaml'), readFileSync(join(dir, 'model.yaml'), 'utf8').replace(/^cache:.*$/m, ''));
  const config = readModelConfig(dir);
  const modelPath = join(dir, '1', 'model.onnx');
  const ort = await ModelVersion.load(config, 1, modelPath, directSchedulerFactory);
  // One real answer, replayed by a scheduler that answers at once.
  const recorded = await ort.scheduler.submit({
    inputs: ort.preprocessor.run([ort.schema.validate({ ...transaction }, '')], () => ''),
    rows: 1,
  });
  const instantScheduler: SchedulerFactory = () => {
    const scheduler: Scheduler = {
      submit: (): Promise<InferenceResult> =>
        Promise.resolve({ outputs: recorded.outputs, queueMs: 0, inferenceMs: 0, batchSize: 1 }),
      queueDepth: 0,
      batches: new BatchStatistics(),
      drain: () => Promise.resolve(),
    };
    return scheduler;
  };
  const instant = await ModelVersion.load(config, 2, modelPath, instantScheduler);
  const loadBefore = loadavg();
  const result = {
    command: `node --import tsx bench/stage-runner.ts --rounds ${ROUNDS} --requests ${REQUESTS}`,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}`,
    load_average_before: loadBefore.map((x) => Math.round(x * 100) / 100),
    instant: summary(await timePaired(instant, REQUESTS)),
    ort: summary(await timePaired(ort, Math.max(1, Math.round(REQUESTS / 4)))),
    load_average_after: loadavg().map((x) => Math.round(x * 100) / 100),
  };
  await instant.unload();
  await ort.unload();
  root.remove();
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/stage-runner.json', `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
}

await main();
