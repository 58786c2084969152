/**
 * Is caliper's load generator the bottleneck? It and wrk (C, event-driven) load the same bare HTTP echo server
 * (a separate Node process) at the same concurrency, interleaved round by round; the figure is caliper's
 * requests/s over wrk's from the same round. Target: >= 0.8x.
 *
 *   node --import tsx bench/loadgen.ts [--rounds 3] [--seconds 5] [--concurrency 16,64]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBench } from '../src/bench/bench-runner.ts';
import { HttpLoadTarget } from '../src/bench/load-target.ts';

const BODY = JSON.stringify({ transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310 });

if (process.argv[2] === '--echo-server') {
  // The bare server: parse the request, answer a small JSON body, keep the connection alive.
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      response.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
  });
} else {
  await main();
}

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : fallback;
}

async function startEchoServer(): Promise<{ url: string; stop: () => void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--echo-server'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    child.once('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
}

function runWrk(url: string, threads: number, connections: number, seconds: number, script: string): number {
  const out = execFileSync('wrk', [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '-s', script, `${url}/echo`], {
    encoding: 'utf8',
  });
  const match = /Requests\/sec:\s*([\d.]+)/.exec(out);
  if (!match) throw new Error(`wrk output without Requests/sec:\n${out}`);
  return Number(match[1]);
}

async function runCaliper(
  url: string,
  connections: number,
  seconds: number,
): Promise<{ throughput: number; p99: number; stable: boolean; cpuUsPerRequest: number }> {
  const cpuBefore = process.cpuUsage();
  const data = { source: 'inline', documents: [JSON.parse(BODY) as unknown] };
  const windowMs = (seconds * 1000) / 3;
  const report = await runBench({
    target: new HttpLoadTarget(url, '/echo', data, false),
    url,
    model: 'echo',
    protocol: 'predict',
    data: { source: 'inline', requests: 1 },
    plan: { mode: 'concurrency', levels: [connections] },
    windowMs,
    warmupMs: 1000,
    stability: { maxTrials: 3 },
    serverStats: false,
  });
  const step = report.steps[0]!;
  const cpu = process.cpuUsage(cpuBefore);
  const sent = step.windows.reduce((sum, w) => sum + w.requests, 0) + step.throughput; // + about 1 s of warm-up
  return {
    throughput: step.throughput,
    p99: step.latencyMs.p99,
    stable: step.stable,
    cpuUsPerRequest: Math.round(((cpu.user + cpu.system) / sent) * 100) / 100,
  };
}

async function main(): Promise<void> {
  const rounds = Number(argument('--rounds', '3'));
  const seconds = Number(argument('--seconds', '5'));
  const levels = argument('--concurrency', '16,64').split(',').map(Number);
  const work = mkdtempSync(join(tmpdir(), 'caliper-loadgen-'));
  const script = join(work, 'post.lua');
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = ${JSON.stringify(BODY)}\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  const wrkVersion = execFileSync('sh', ['-c', 'wrk -v 2>&1 | head -1'], { encoding: 'utf8' }).trim();
  const echo = await startEchoServer();
  const results: {
    concurrency: number;
    round: number;
    wrk1: number;
    wrk2: number;
    caliper: number;
    caliperP99Ms: number;
    caliperCpuUsPerRequest: number;
    ratioVsWrk1: number;
    ratioVsBestWrk: number;
  }[] = [];
  try {
    // Warm the server's JIT before any measured run.
    runWrk(echo.url, 1, 16, 2, script);
    for (const concurrency of levels) {
      for (let round = 1; round <= rounds; round++) {
        // Interleaved: wrk with one thread (like caliper), caliper, wrk with two threads (its default).
        const wrk1 = runWrk(echo.url, 1, concurrency, seconds, script);
        const caliper = await runCaliper(echo.url, concurrency, seconds);
        const wrk2 = runWrk(echo.url, 2, concurrency, seconds, script);
        const row = {
          concurrency,
          round,
          wrk1,
          wrk2,
          caliper: caliper.throughput,
          caliperP99Ms: caliper.p99,
          caliperCpuUsPerRequest: caliper.cpuUsPerRequest,
          ratioVsWrk1: Math.round((caliper.throughput / wrk1) * 1000) / 1000,
          ratioVsBestWrk: Math.round((caliper.throughput / Math.max(wrk1, wrk2)) * 1000) / 1000,
        };
        results.push(row);
        process.stderr.write(
          `c=${concurrency} round ${round}: wrk -t1 ${wrk1.toFixed(0)}  caliper ${caliper.throughput.toFixed(0)}  wrk -t2 ${wrk2.toFixed(0)} req/s  → caliper/wrk-t1 ${row.ratioVsWrk1}, caliper/best-wrk ${row.ratioVsBestWrk}; generator CPU ${caliper.cpuUsPerRequest} µs/request\n`,
        );
      }
    }
  } finally {
    echo.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const median = (values: number[]): number => {
    const s = [...values].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)]!;
  };
  const summary = levels.map((concurrency) => {
    const rows = results.filter((r) => r.concurrency === concurrency);
    return {
      concurrency,
      medianRatioVsWrk1: median(rows.map((r) => r.ratioVsWrk1)),
      medianRatioVsBestWrk: median(rows.map((r) => r.ratioVsBestWrk)),
      minRatioVsBestWrk: Math.min(...rows.map((r) => r.ratioVsBestWrk)),
    };
  });
  const output = {
    benchmark: 'loadgen',
    question:
      'caliper bench requests/s over wrk requests/s against the same bare Node HTTP echo server, same connections, same run',
    machine: {
      cores: availableParallelism(),
      cpu: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      wrk: wrkVersion,
      note: 'shared 2-core machine: other engineers run tests at the same time',
    },
    command: `node --import tsx bench/loadgen.ts --rounds ${rounds} --seconds ${seconds} --concurrency ${levels.join(',')}`,
    seconds,
    rounds,
    results,
    summary,
  };
  mkdirSync(join(fileURLToPath(new URL('.', import.meta.url)), 'results'), { recursive: true });
  writeFileSync(
    fileURLToPath(new URL('./results/loadgen.json', import.meta.url)),
    `${JSON.stringify(output, null, 2)}\n`,
  );
  for (const s of summary)
    process.stderr.write(
      `c=${s.concurrency}: median caliper/wrk-t1 ${s.medianRatioVsWrk1}, median caliper/best-wrk ${s.medianRatioVsBestWrk} (min ${s.minRatioVsBestWrk})\n`,
    );
}
