/*
 * Protocol throughput (issue 10 targets): the same model and request row over REST v2 JSON (the baseline),
 * REST v2 with the binary tensor extension, gRPC ModelInfer (unary calls, raw_input_contents) and gRPC
 * ModelStreamInfer (one bidirectional stream), 32 requests in flight in a closed loop.
 *
 *   node --import tsx bench/protocols.ts [--seconds 5] [--rounds 3]
 *
 * One Caliper server (`caliper serve --grpc-port`, version 1 of examples/fashion-mnist and fraud-detector)
 * runs pinned to core 0; the load generators run on core 1: autocannon (in this process) for REST, and
 * bench/grpc-load.ts (its own process) for gRPC. Unary calls are written frame by frame as h2load does
 * (bench/h2-unary-client.ts; Node's and grpc-js's clients cost 50–300 µs of CPU per call and were the
 * bottleneck), the stream goes through grpc-js.
 *
 * Load shape of unary gRPC: "32 concurrent clients" is read as 32 clients with a connection each, as the
 * REST baseline has 32 keep-alive connections, so `grpc_unary` opens 32 HTTP/2 connections with one call in
 * flight on each; a client's calls then arrive independently, as REST requests do, instead of in lock-step
 * bursts (on one connection fraud_detector's batches were 31–32 requests, over 32 connections 11).
 * `grpc_unary_1conn` is the other common shape, one client multiplexing 32 calls over one channel (ghz's
 * default); it costs the server less per call (fewer reads and writes) and is reported next to it, not
 * instead of it.
 *
 * Floors: two stand-in servers on core 0 answer every unary call with a fixed ModelInferResponse and do
 * nothing else (bench/grpc-floor-server.ts): `floor_grpcjs` (grpc-js with Caliper's server options) and
 * `floor_http2` (Node's http2 module alone), each under both load shapes, with the Caliper server stopped
 * (SIGSTOP) meanwhile. They are what grpc-js and HTTP/2 cost per call with no work to do: a handler, Caliper's
 * or any other, works on top of that, so a requests/s target above `floor_grpcjs` is out of reach on grpc-js.
 *
 * Protocols are interleaved and their order rotated each round; each figure is a ratio to JSON REST within
 * the same round, and the reported ratio is the median over rounds. Next to requests/s, the server's CPU time
 * per request (from /proc/PID/stat) and the mean batch size Caliper ran (from its /stats) are reported.
 * Results: bench/results/protocols.json.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { benchRows } from './protocol-payloads.ts';
import { cpuSeconds } from './process-cpu.ts';
import { freePort } from '../src/system/free-port.ts';
import { numberOption } from './bench-options.ts';

const root = join(import.meta.dirname, '..');
const SECONDS = numberOption('--seconds', 5);
const ROUNDS = numberOption('--rounds', 3);
const CONNECTIONS = 32;
const dataDir = join(root, 'bench/data/protocols');

execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });

/** A repository with version 1 of each example, as committed. */
function repository(examples: string[]): string {
  rmSync(dataDir, { recursive: true, force: true });
  for (const example of examples) {
    const name = /^name:\s*(\S+)/m.exec(readFileSync(join(root, 'examples', example, 'model.yaml'), 'utf8'))![1]!;
    mkdirSync(join(dataDir, name), { recursive: true });
    cpSync(join(root, 'examples', example, '1'), join(dataDir, name, '1'), { recursive: true });
    cpSync(join(root, 'examples', example, 'model.yaml'), join(dataDir, name, 'model.yaml'));
  }
  return dataDir;
}

/** A floor server (bench/grpc-floor-server.ts) on core 0 answering as `model` would. */
async function startFloor(
  kind: 'grpc-js' | 'http2',
  model: string,
  output: string,
  width: number,
): Promise<{ address: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    'taskset',
    [
      '-c',
      '0',
      process.execPath,
      '--import',
      'tsx',
      'bench/grpc-floor-server.ts',
      kind,
      String(port),
      model,
      output,
      String(width),
    ],
    {
      cwd: root,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`floor server ${kind} exited with ${code}`)));
  });
  return { address: `127.0.0.1:${port}`, child };
}

async function startServer(repo: string): Promise<{ url: string; grpc: string; child: ChildProcess }> {
  const [port, grpcPort] = [await freePort(), await freePort()];
  const child = spawn(
    'taskset',
    [
      '-c',
      '0',
      process.execPath,
      'bin/caliper.js',
      'serve',
      repo,
      '--port',
      String(port),
      '--grpc-port',
      String(grpcPort),
    ],
    {
      cwd: root,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' },
    },
  );
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/v2/health/ready`)).ok) return { url, grpc: `127.0.0.1:${grpcPort}`, child };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready`);
}

const PROTOCOLS = [
  'rest_json',
  'rest_binary',
  'grpc_unary',
  'grpc_unary_1conn',
  'grpc_stream',
  'floor_grpcjs',
  'floor_grpcjs_1conn',
  'floor_http2',
  'floor_http2_1conn',
] as const;
type Protocol = (typeof PROTOCOLS)[number];
interface Load {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  serverCpuUsPerRequest?: number;
  meanBatch?: number;
}

/** Requests and batch executions the model has served so far (Triton-style statistics). */
async function served(url: string, model: string): Promise<{ requests: number; executions: number }> {
  const stats = (await (await fetch(`${url}/v2/models/${model}/stats`)).json()) as {
    model_stats: { inference_count: number; execution_count: number }[];
  };
  return stats.model_stats.reduce(
    (sum, s) => ({ requests: sum.requests + s.inference_count, executions: sum.executions + s.execution_count }),
    { requests: 0, executions: 0 },
  );
}

/** The request bodies of one model: JSON (a JS client's Array.from(Float32Array)) and binary (JSON header + raw FP32). */
function restBodies(
  input: string,
  width: number,
): Record<'rest_json' | 'rest_binary', { body: Buffer; headers: Record<string, string> }> {
  const row = benchRows(width);
  const json = Buffer.from(
    JSON.stringify({ inputs: [{ name: input, datatype: 'FP32', shape: [1, width], data: Array.from(row) }] }),
  );
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: input, datatype: 'FP32', shape: [1, width], parameters: { binary_data_size: row.byteLength } }],
      parameters: { binary_data_output: true },
    }),
  );
  return {
    rest_json: { body: json, headers: { 'content-type': 'application/json' } },
    rest_binary: {
      body: Buffer.concat([header, Buffer.from(row.buffer)]),
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.byteLength),
      },
    },
  };
}

async function rest(url: string, body: Buffer, headers: Record<string, string>, seconds: number): Promise<Load> {
  // autocannon sends a Buffer body as-is; its bundled typings only name strings.
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: seconds,
    method: 'POST',
    body: body as unknown as string,
    headers,
  });
  return {
    rps: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.non2xx,
  };
}

function grpc(
  mode: 'unary' | 'stream',
  address: string,
  model: string,
  input: string,
  width: number,
  seconds: number,
  connections = 1,
): Promise<Load> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'taskset',
      [
        '-c',
        '1',
        process.execPath,
        '--import',
        'tsx',
        'bench/grpc-load.ts',
        mode,
        address,
        model,
        input,
        String(width),
        String(seconds),
        String(CONNECTIONS),
        String(connections),
      ],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`grpc-load exited with ${code}`));
      const parsed = JSON.parse(out.trim().split('\n').pop()!) as Load & { firstError: string };
      if (parsed.firstError) console.error(`  grpc errors: ${parsed.errors} (${parsed.firstError})`);
      resolve(parsed);
    });
  });
}

const median = (values: number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const loadAverage = (): number => Math.round(loadavg()[0]! * 100) / 100;

const models = [
  { model: 'fashion_mnist', input: 'pixels', width: 784, output: 'logits', outputWidth: 10, example: 'fashion-mnist' },
  {
    model: 'fraud_detector',
    input: 'features',
    width: 10,
    output: 'fraud_probability',
    outputWidth: 1,
    example: 'fraud-detector',
  },
];
const server = await startServer(repository(models.map((m) => m.example)));
const floorChildren: ChildProcess[] = [];
const loadAverages = [loadAverage()];
const results: Record<string, unknown> = {};
try {
  for (const m of models) {
    const path = `${server.url}/v2/models/${m.model}/infer`;
    const bodies = restBodies(m.input, m.width);
    const floors = {
      grpcjs: await startFloor('grpc-js', m.model, m.output, m.outputWidth),
      http2: await startFloor('http2', m.model, m.output, m.outputWidth),
    };
    floorChildren.push(floors.grpcjs.child, floors.http2.child);
    const run = async (protocol: Protocol, seconds: number): Promise<Load> => {
      const floor = protocol.startsWith('floor_')
        ? floors[protocol.startsWith('floor_grpcjs') ? 'grpcjs' : 'http2']
        : undefined;
      const pid = (floor?.child ?? server.child).pid!;
      const connections = protocol.endsWith('_1conn') ? 1 : CONNECTIONS;
      // While a floor is measured the Caliper server is stopped, so that its timers do not share core 0 with it.
      if (floor) server.child.kill('SIGSTOP');
      const before = floor ? undefined : await served(server.url, m.model);
      const cpuBefore = cpuSeconds(pid);
      const load = floor
        ? await grpc('unary', floor.address, m.model, m.input, m.width, seconds, connections)
        : protocol === 'grpc_unary' || protocol === 'grpc_unary_1conn'
          ? await grpc('unary', server.grpc, m.model, m.input, m.width, seconds, connections)
          : protocol === 'grpc_stream'
            ? await grpc('stream', server.grpc, m.model, m.input, m.width, seconds)
            : await rest(
                path,
                bodies[protocol as 'rest_json' | 'rest_binary'].body,
                bodies[protocol as 'rest_json' | 'rest_binary'].headers,
                seconds,
              );
      load.serverCpuUsPerRequest = ((cpuSeconds(pid) - cpuBefore) * 1e6) / Math.max(1, load.rps * seconds);
      if (floor) server.child.kill('SIGCONT');
      if (before) {
        const after = await served(server.url, m.model);
        load.meanBatch = (after.requests - before.requests) / Math.max(1, after.executions - before.executions);
      }
      return load;
    };
    const protocols: Protocol[] = [...PROTOCOLS];
    for (const p of protocols) await run(p, 1); // warm-up: JIT, connections, batcher
    const rounds: Record<Protocol, Load>[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = protocols.map((_, i) => protocols[(i + round) % protocols.length]!);
      const loads = {} as Record<Protocol, Load>;
      for (const p of order) loads[p] = await run(p, SECONDS);
      rounds.push(loads);
      console.log(
        `${m.model} round ${round + 1}: ${order.map((p) => `${p} ${loads[p].rps.toFixed(0)} req/s (p99 ${loads[p].p99Ms.toFixed(1)} ms, server ${loads[p].serverCpuUsPerRequest!.toFixed(0)} µs CPU/req${loads[p].meanBatch ? `, batch ${loads[p].meanBatch!.toFixed(1)}` : ''}, ${loads[p].errors} errors)`).join(', ')}`,
      );
    }
    loadAverages.push(loadAverage());
    const ratio = (p: Protocol): number => r3(median(rounds.map((r) => r[p].rps / r.rest_json.rps)));
    const cpuRatio = (p: Protocol): number =>
      r3(median(rounds.map((r) => r.rest_json.serverCpuUsPerRequest! / r[p].serverCpuUsPerRequest!)));
    const others = protocols.filter((p) => p !== 'rest_json');
    results[m.model] = {
      request_bytes: { rest_json: bodies.rest_json.body.byteLength, rest_binary: bodies.rest_binary.body.byteLength },
      requests_per_s_ratio_to_rest_json: Object.fromEntries(others.map((p) => [p, ratio(p)])),
      server_cpu_per_request_ratio_rest_json_over: Object.fromEntries(others.map((p) => [p, cpuRatio(p)])),
      median_server_cpu_us_per_request: Object.fromEntries(
        protocols.map((p) => [p, Math.round(median(rounds.map((r) => r[p].serverCpuUsPerRequest!)) * 10) / 10]),
      ),
      rounds: rounds.map((r) =>
        Object.fromEntries(
          Object.entries(r).map(([p, l]) => [
            p,
            {
              rps: Math.round(l.rps),
              p50Ms: r3(l.p50Ms),
              p99Ms: r3(l.p99Ms),
              errors: l.errors,
              serverCpuUsPerRequest: Math.round(l.serverCpuUsPerRequest!),
              ...(l.meanBatch ? { meanBatch: Math.round(l.meanBatch * 10) / 10 } : {}),
            },
          ]),
        ),
      ),
    };
    console.log(
      `${m.model}: requests/s vs JSON REST (median of ${ROUNDS} rounds): ${others.map((p) => `${p} ${ratio(p)}×`).join(', ')}`,
    );
    console.log(
      `${m.model}: server CPU/request JSON REST ÷ protocol: ${others.map((p) => `${p} ${cpuRatio(p)}×`).join(', ')}`,
    );
    for (const child of [floors.grpcjs.child, floors.http2.child]) child.kill('SIGINT');
  }
} finally {
  server.child.kill('SIGCONT');
  server.child.kill('SIGINT');
  for (const child of floorChildren) if (child.exitCode === null) child.kill('SIGINT');
}
const report = {
  command: `node --import tsx bench/protocols.ts --seconds ${SECONDS} --rounds ${ROUNDS}`,
  machine: `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), shared with other work; server on core 0, load generators on core 1`,
  load_average_1m: loadAverages,
  connections: CONNECTIONS,
  grpc_unary_shapes: {
    grpc_unary: `${CONNECTIONS} HTTP/2 connections, one call in flight on each`,
    grpc_unary_1conn: `one HTTP/2 connection, ${CONNECTIONS} calls in flight`,
  },
  seconds: SECONDS,
  results,
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/protocols.json'), `${JSON.stringify(report, null, 2)}\n`);
console.log('wrote bench/results/protocols.json');
