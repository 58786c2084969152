import { existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { ARRIVAL_DISTRIBUTIONS, type ArrivalDistribution } from '../bench/arrival-schedule.ts';
import type { BenchReport, StepResult } from '../bench/bench-report.ts';
import { expandRateRange, runBench, type LoadPlan } from '../bench/bench-runner.ts';
import { renderBenchHtml } from '../bench/html-report.ts';
import { HttpLoadTarget, inferencePath, parseTargetUrl, type LoadTarget } from '../bench/load-target.ts';
import {
  BENCH_PROTOCOLS,
  isV2Request,
  readRequestsFile,
  readSampleRequests,
  servedModelConfig,
  toV2Requests,
  type BenchProtocol,
  type RequestData,
} from '../bench/request-data.ts';
import {
  requestSchemaFromOpenApi,
  requestSchemaOfInputs,
  synthesizeRequests,
  synthesizeV2Requests,
  type V2TensorMetadata,
} from '../bench/request-synthesizer.ts';
import { isModelFolder, readModelConfig } from '../config/model-config-file.ts';
import { CaliperError } from '../errors.ts';
import { parseChoiceOption, parseIntegerListOption, parseIntegerOption, parsePositiveNumberOption } from './options.ts';

interface BenchCommandOptions {
  url: string;
  statsUrl?: string;
  model: string;
  protocol: BenchProtocol;
  data?: string;
  sample?: boolean;
  requests?: number;
  seed: number;
  concurrency?: number[];
  rate?: number[];
  distribution: ArrivalDistribution;
  duration: number;
  warmup?: number;
  maxTrials: number;
  stabilityPct: number;
  maxConnections: number;
  serverStats: boolean;
  json?: boolean;
  output?: string;
  report?: string;
}

const rateRange = (value: string): number[] => {
  try {
    return expandRateRange(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};

/** Distinct synthesized /predict requests: more than the default response cache (10,000 entries) holds. */
const DEFAULT_SYNTHESIZED = 20_000;
/** Distinct synthesized tensor requests (v2/gRPC by name only): tensors are large, and v2 answers are not cached. */
const DEFAULT_SYNTHESIZED_TENSORS = 1000;

const usage = (message: string): CaliperError => new CaliperError('CALIPER_INVALID_INPUT', message);

/** The model's name, and its folder when --model names one (for the sample request and v2 preprocessing). */
function resolveModel(model: string): { name: string; dir?: string } {
  if (existsSync(model) && isModelFolder(model)) return { name: readModelConfig(model).name, dir: resolve(model) };
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(model))
    throw usage(`--model: "${model}" is neither a model folder (with model.yaml) nor a model name`);
  return { name: model };
}

/**
 * The requests to send: --data, else the model folder's sample file with --sample, else requests synthesized from
 * the model's request schema (the local model.yaml, or the running server's /openapi.json or v2 metadata) — many
 * distinct, seeded requests, so the benchmark measures inference and not the response cache.
 */
async function loadData(options: BenchCommandOptions, model: { name: string; dir?: string }): Promise<RequestData> {
  if (options.data) return readRequestsFile(options.data);
  if (options.sample) {
    if (!model.dir) throw usage('--sample needs --model to be a model folder (its sample-request.json is sent)');
    return readSampleRequests(model.dir);
  }
  const synthesis = { count: options.requests ?? DEFAULT_SYNTHESIZED, seed: options.seed };
  if (model.dir) {
    const config = servedModelConfig(model.dir);
    // More distinct requests than an LRU response cache holds, so cycling through them never hits it.
    const count =
      options.requests ??
      (config.cache.enabled && config.cache.backend === 'memory'
        ? Math.max(DEFAULT_SYNTHESIZED, 2 * config.cache.maxEntries)
        : DEFAULT_SYNTHESIZED);
    return synthesizeRequests(requestSchemaOfInputs(config.inputs), model.dir, { ...synthesis, count });
  }
  const httpBase = options.protocol === 'grpc' ? options.statsUrl : options.url;
  if (!httpBase)
    throw usage(
      `--data REQUESTS.jsonl or --stats-url is required with --protocol grpc and a model name (the request schema is read over HTTP)`,
    );
  const base = httpBase.replace(/\/$/, '');
  if (options.protocol === 'predict') {
    const openapi = await fetchJson(`${base}/openapi.json`);
    const schema = requestSchemaFromOpenApi(openapi, model.name);
    if (!schema)
      throw usage(
        `${base}/openapi.json does not describe POST /models/${model.name}/predict; pass --data REQUESTS.jsonl`,
      );
    return synthesizeRequests(schema, `${base}/openapi.json`, synthesis);
  }
  const metadata = (await fetchJson(`${base}/v2/models/${encodeURIComponent(model.name)}`)) as {
    inputs?: V2TensorMetadata[];
  };
  if (!Array.isArray(metadata.inputs))
    throw usage(`${base}/v2/models/${model.name}: no inputs in the model metadata; pass --data REQUESTS.jsonl`);
  return synthesizeV2Requests(metadata.inputs, `${base}/v2/models/${model.name}`, {
    ...synthesis,
    count: options.requests ?? DEFAULT_SYNTHESIZED_TENSORS,
  });
}

async function fetchJson(url: string): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw usage(`cannot read ${url} (${(error as Error).message}); is the server running?`);
  }
  if (!response.ok) throw usage(`${url} answered ${response.status}; pass --data REQUESTS.jsonl`);
  return response.json();
}

/** The gRPC target's module (grpc-js, protobufjs), loaded only for --protocol grpc. */
const grpcTargetModule = () => import('../bench/grpc-load-target.ts');

async function createTarget(
  options: BenchCommandOptions,
  model: { name: string; dir?: string },
  data: RequestData,
): Promise<LoadTarget> {
  const v2 = (): RequestData => (data.documents.every(isV2Request) ? data : toV2Requests(data, model.dir));
  if (options.protocol === 'grpc') return new (await grpcTargetModule()).GrpcLoadTarget(options.url, model.name, v2());
  const requests = options.protocol === 'v2' ? v2() : data;
  return new HttpLoadTarget(options.url, inferencePath(options.protocol, model.name), requests);
}

export function formatStep(report: Pick<BenchReport, 'mode'>, step: StepResult): string {
  const load = report.mode === 'concurrency' ? `concurrency ${step.load}` : `rate ${step.load}/s`;
  const l = step.latencyMs;
  const errors =
    step.errors.total > 0
      ? `  errors ${Object.entries(step.errors.byStatus)
          .map(([k, v]) => `${k}×${v}`)
          .join(' ')}`
      : '';
  const batch = step.serverStats && step.serverStats.executions > 0 ? `  batch ${step.serverStats.meanBatchSize}` : '';
  return `${load.padEnd(16)} ${step.throughput.toFixed(1).padStart(9)} req/s  p50 ${l.p50.toFixed(2)}  p90 ${l.p90.toFixed(2)}  p95 ${l.p95.toFixed(2)}  p99 ${l.p99.toFixed(2)}  max ${l.max.toFixed(2)} ms${errors}${batch}  ${step.stable ? `stable (${step.windows.length} windows)` : `NOT stable after ${step.windows.length} windows`}`;
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description(
      'load-test a model server: closed-loop concurrency or open-loop request-rate sweeps, latency percentiles, per-stage breakdown',
    )
    .requiredOption(
      '--url <url>',
      'server base URL, e.g. http://127.0.0.1:8000 (grpc://127.0.0.1:8001 with --protocol grpc)',
    )
    .option(
      '--stats-url <url>',
      'HTTP base URL for the server statistics when --url is gRPC (default: no per-stage breakdown)',
    )
    .requiredOption(
      '--model <name|dir>',
      'model name (of the server at --url), or a model folder (its name and request schema are used)',
    )
    .option('--protocol <protocol>', `predict | v2 | grpc`, parseChoiceOption('--protocol', BENCH_PROTOCOLS), 'predict')
    .option(
      '--data <file>',
      "requests to send, one JSON document per line (JSONL), cycled through (default: synthesized from the model's request schema)",
    )
    .option(
      '--sample',
      "send the model folder's sample-request.json instead of synthesized requests (measures the cache when it is on)",
    )
    .option(
      '--requests <n>',
      `distinct synthesized requests (default ${DEFAULT_SYNTHESIZED}, or twice the model folder's cache.max_entries; ${DEFAULT_SYNTHESIZED_TENSORS} tensor requests)`,
      parseIntegerOption('--requests', 1),
    )
    .option('--seed <n>', 'seed of the synthesized requests', parseIntegerOption('--seed', 0), 1)
    .option(
      '--concurrency <list>',
      'closed loop: concurrency levels, e.g. 1,2,4,8',
      parseIntegerListOption('--concurrency'),
    )
    .option('--rate <start:end:step>', 'open loop: offered request rates (req/s), e.g. 100:1000:100', rateRange)
    .option(
      '--distribution <kind>',
      'open-loop arrivals: constant | poisson',
      parseChoiceOption('--distribution', ARRIVAL_DISTRIBUTIONS),
      'constant',
    )
    .option('--duration <seconds>', 'length of one measurement window', parsePositiveNumberOption('--duration'), 2)
    .option(
      '--warmup <seconds>',
      'load before the first window, not measured (default: min(duration, 1))',
      parsePositiveNumberOption('--warmup'),
    )
    .option(
      '--max-trials <n>',
      'windows per step at most before reporting it unstable',
      parseIntegerOption('--max-trials', 3),
      10,
    )
    .option(
      '--stability-pct <pct>',
      'throughput and p99 must stay within ±pct over 3 windows',
      parsePositiveNumberOption('--stability-pct'),
      10,
    )
    .option(
      '--max-connections <n>',
      'open loop: connections at most (due requests wait beyond that)',
      parseIntegerOption('--max-connections', 1),
      512,
    )
    .option('--no-server-stats', 'do not read GET /v2/models/{name}/stats')
    .option('--json', 'print the report as JSON on stdout')
    .option('-o, --output <file.json>', 'write the JSON report to a file')
    .option('--report <file.html>', 'write a self-contained HTML report with charts')
    .action(async (options: BenchCommandOptions) => {
      if ((options.concurrency === undefined) === (options.rate === undefined)) {
        throw usage('give exactly one of --concurrency 1,2,4,… (closed loop) or --rate START:END:STEP (open loop)');
      }
      if (options.concurrency && options.distribution !== 'constant' && process.argv.includes('--distribution')) {
        throw usage('--distribution applies to --rate (open loop) only');
      }
      if (options.protocol === 'grpc') (await grpcTargetModule()).parseGrpcAddress(options.url);
      else parseTargetUrl(options.url);
      if (options.statsUrl) parseTargetUrl(options.statsUrl);
      const model = resolveModel(options.model);
      const data = await loadData(options, model);
      const target = await createTarget(options, model, data);
      const plan: LoadPlan = options.concurrency
        ? { mode: 'concurrency', levels: options.concurrency }
        : {
            mode: 'rate',
            rates: options.rate!,
            distribution: options.distribution,
            maxConnections: options.maxConnections,
          };
      const mode = plan.mode;
      const log = (line: string): void => {
        process.stderr.write(`${line}\n`);
      };
      log(
        `caliper bench: ${target.description}, ${mode === 'concurrency' ? `concurrency ${options.concurrency!.join(',')}` : `${options.rate!.length} rate step(s), ${options.distribution} arrivals`}, ${options.duration} s windows`,
      );
      let report: BenchReport;
      try {
        report = await runBench({
          target,
          url: options.url,
          model: model.name,
          protocol: options.protocol,
          data: { source: data.source, requests: data.documents.length },
          plan,
          windowMs: options.duration * 1000,
          ...(options.warmup !== undefined ? { warmupMs: options.warmup * 1000 } : {}),
          stability: { maxTrials: options.maxTrials, tolerancePct: options.stabilityPct },
          ...(options.statsUrl ? { statsUrl: options.statsUrl } : {}),
          serverStats: options.serverStats && (options.protocol !== 'grpc' || options.statsUrl !== undefined),
          onStep: (step) => log(formatStep({ mode }, step)),
        });
      } finally {
        await target.close?.();
      }
      for (const warning of report.warnings) log(`warning: ${warning}`);
      const json = JSON.stringify(report, null, 2);
      if (options.output) writeFileSync(options.output, `${json}\n`);
      if (options.report) {
        writeFileSync(options.report, renderBenchHtml(report));
        log(`report: ${resolve(options.report)}`);
      }
      if (options.json) process.stdout.write(`${json}\n`);
      const failed = report.steps.every((s) => s.throughput === 0);
      if (failed)
        throw new CaliperError(
          'CALIPER_INTERNAL',
          `no successful response from ${options.url} (errors: ${JSON.stringify(report.steps[0]?.errors.byStatus ?? {})})`,
        );
    });
}
