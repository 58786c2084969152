/*
 * Where a Caliper server's CPU goes under a 32-connection closed loop, without the rest of bench/serving.ts: a server
 * (bench/profiled-server.ts) on core 0 profiled over one load window only, the load from this process on core 1.
 * Prints µs of CPU per request by package and by function (bench/cpu-profile.ts) and the batch sizes formed.
 *
 *   node --import tsx bench/profile-window.ts [fraud|fashion] [--model FILE.onnx] [--seconds 5] [--top 30]
 *
 * `fashion --model FILE.onnx` serves that ONNX file under the fashion example's model.yaml (e.g. the
 * 784-1024-1024-10 MLP of bench/serving-mlp.ts). The profile is written to bench/data/profiles/window.cpuprofile.
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startClosedLoop } from '../src/bench/load-generator.ts';
import { HttpLoadTarget } from '../src/bench/load-target.ts';
import { freePort } from '../src/system/free-port.ts';
import { numberOption } from './bench-options.ts';
import { profileSummary } from './cpu-profile.ts';
import { exampleModelFolder, fashionRequests, fraudRequests } from './serving-requests.ts';

const root = join(import.meta.dirname, '..');
const SECONDS = numberOption('--seconds', 5);
const TOP = numberOption('--top', 30);
const FASHION = process.argv.includes('fashion');
const modelAt = process.argv.indexOf('--model');
const MODEL = modelAt > 0 ? process.argv[modelAt + 1] : undefined;
const dataDir = join(root, 'bench/data/profile-window');

execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });

const [example, name] = FASHION ? ['fashion-mnist', 'fashion_mnist'] : ['fraud-detector', 'fraud_detector'];
const repo = exampleModelFolder(root, dataDir, name, example, name, { cache: 'false' });
if (MODEL) copyFileSync(MODEL, join(repo, name, '1/model.onnx'));
const data = FASHION ? fashionRequests(root) : fraudRequests();
const profiles = join(root, 'bench/data/profiles');
mkdirSync(profiles, { recursive: true });
const file = join(profiles, 'window.cpuprofile');

const port = await freePort();
const child = spawn(
  'taskset',
  ['-c', '0', process.execPath, '--import', 'tsx', 'bench/profiled-server.ts', String(port), file, repo],
  { cwd: root, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' } },
);
const reply = (): Promise<Record<string, number | string | boolean>> =>
  new Promise((resolve) => child.once('message', (m) => resolve(m as Record<string, number | string | boolean>)));
const url = String((await reply()).ready);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const load = startClosedLoop(new HttpLoadTarget(url, `/models/${name}/predict`, data, false), 32);
await sleep(2000);
child.send('start');
await reply();
load.nextWindow();
await sleep(SECONDS * 1000);
child.send('stop');
const window = load.nextWindow().summarize();
const { cpuUs } = await reply();
await load.stop();
const stats = (await (await fetch(`${url}/v2/models/${name}/stats`)).json()) as {
  model_stats: { batch_stats: { batch_size: number; compute_infer: { count: number } }[] }[];
};
child.send('exit');
await new Promise((resolve) => child.once('exit', resolve));
const cpuUsPerRequest = Math.round((Number(cpuUs) / window.requests) * 10) / 10;
const summary = profileSummary(file, cpuUsPerRequest, TOP);
console.log(`${name}: ${Math.round(window.throughput)} rps, ${cpuUsPerRequest} µs CPU per request (profiled)`);
console.log(
  'batches (size: count):',
  Object.fromEntries(stats.model_stats[0]!.batch_stats.map((b) => [b.batch_size, b.compute_infer.count])),
);
for (const p of summary.packages) console.log(`  ${p.us.toFixed(1).padStart(6)}  ${p.pkg}`);
console.log('functions:');
for (const f of summary.functions) console.log(`  ${f.us.toFixed(1).padStart(6)}  ${f.fn}`);
