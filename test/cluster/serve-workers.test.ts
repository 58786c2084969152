import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent, request as httpRequest } from 'node:http';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcInferenceClient } from '../../src/client/grpc-client.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { freePort } from '../../src/system/free-port.ts';
import { usableCores } from '../../src/system/usable-cores.ts';
import { FRAUD_ONNX, FRAUD_YAML, fraudVariant, RegistryFixture } from '../registry/registry-fixture.ts';

const BODY = JSON.stringify({ transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 30 });
const ADMIN_TOKEN = 'cluster-admin-secret';

interface Answer {
  status: number;
  worker?: string;
  connection?: string;
  body: string;
  error?: string;
}

/** One HTTP request; `agent: false` opens a connection of its own (so the primary hands it to the next worker). */
function send(
  url: string,
  options: { method?: string; agent?: Agent | false; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const body = options.body;
  return new Promise((resolve) => {
    const req = httpRequest(
      url,
      {
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        agent: options.agent ?? false,
        headers: {
          ...(body !== undefined
            ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
            : {}),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            worker: res.headers['x-caliper-worker'] as string | undefined,
            connection: res.headers.connection,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', (error: NodeJS.ErrnoException) =>
          resolve({ status: -1, body: '', error: error.code ?? error.message }),
        );
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ status: -1, body: '', error: error.code ?? error.message }),
    );
    req.end(body);
  });
}

/** The value of a Prometheus sample line `name{labels…} value` whose labels include every given one. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** The worker processes of a primary, by slot (CALIPER_WORKER_SLOT in each one's environment). */
function workerPids(primaryPid: number): Map<string, number> {
  const pids = execFileSync('pgrep', ['-P', String(primaryPid)], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);
  const bySlot = new Map<string, number>();
  for (const pid of pids) {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const slot = env.find((e) => e.startsWith('CALIPER_WORKER_SLOT='))?.split('=')[1];
    if (slot !== undefined) bySlot.set(slot, pid);
  }
  return bySlot;
}

/** Times a process's main thread went to sleep and was woken (voluntary context switches, /proc). */
function mainThreadWakeups(pid: number): number {
  const status = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
  return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)![1]);
}

/** The environment without the variables that would decide ORT's telemetry or where it keeps its files. */
function withoutOrtTelemetryEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { ORT_DISABLE_TELEMETRY: _ort, XDG_CACHE_HOME: _cache, ...rest } = env;
  return rest;
}

describe('caliper serve --workers 2 (a primary and two worker processes on one port)', () => {
  const fixture = new RegistryFixture();
  const userHome = (): string => join(fixture.dir, 'user-home');
  let child: ChildProcessWithoutNullStreams;
  let url = '';
  let grpcAddress = '';
  let output = '';

  const waitFor = async (check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const ready = async (): Promise<boolean> => (await send(`${url}/v2/health/ready`)).status === 200;
  const predict = (agent: Agent | false = false): Promise<Answer> =>
    send(`${url}/models/fraud/predict`, { body: BODY, agent });
  const admin = (path: string, body: unknown): Promise<Answer> =>
    send(`${url}${path}`, { body: JSON.stringify(body), headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });

  beforeAll(async () => {
    const writer = ModelRegistry.open(fixture.home);
    await writer.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await writer.register({ file: fraudVariant(fixture, 'two'), configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await writer.setStage('fraud', 1, 'Production', { actor: 'test' });
    await writer.close();
    mkdirSync(userHome());
    const [port, grpcPort] = [await freePort(), await freePort()];
    url = `http://127.0.0.1:${port}`;
    grpcAddress = `127.0.0.1:${grpcPort}`;
    child = spawn(
      process.execPath,
      [
        'bin/caliper.js',
        'serve',
        'models:/fraud/Production',
        '--registry',
        fixture.home,
        '--workers',
        '2',
        '--port',
        String(port),
        '--grpc-port',
        String(grpcPort),
        '--drain-timeout',
        '20',
      ],
      {
        env: {
          ...withoutOrtTelemetryEnv(process.env),
          CALIPER_LOG_LEVEL: 'info',
          CALIPER_ADMIN_TOKEN: ADMIN_TOKEN,
          // A home of its own, where ONNX Runtime would keep its telemetry (device id, event cache).
          HOME: userHome(),
        },
      },
    );
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    await waitFor(ready, 'both workers ready', 110_000);
  });

  afterAll(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    fixture.remove();
  });

  it('reports each worker’s memory and core share at start', async () => {
    await waitFor(async () => /all 2 workers serving/.test(output), 'the start-up summary', 10_000);
    expect(output).toMatch(/starting 2 workers on \d+ usable cores/);
    expect(output).toMatch(/worker 1 \(pid \d+\) serving: \d+ MiB resident/);
    expect(output).toMatch(/worker 2 \(pid \d+\) serving: \d+ MiB resident/);
  });

  it('keeps the primary light: it serves nothing, so it loads neither the server nor ONNX Runtime', async () => {
    // Every module the primary loads is heap that V8's memory reducer walks again some seconds after start (a full
    // GC of about 150 ms of CPU, measured in bench/workers.ts's first window); the primary only hands out connections.
    const maps = readFileSync(`/proc/${child.pid!}/maps`, 'utf8');
    expect(maps).not.toMatch(/libonnxruntime/);
    for (const pid of workerPids(child.pid!).values())
      expect(readFileSync(`/proc/${pid}/maps`, 'utf8')).toMatch(/libonnxruntime/);
  });

  it('gives each worker a young generation of at least 16 MB, whatever its history', async () => {
    // V8 starts the new space at 1 MB, shrinks it after an idle spell and grows it only as survivors pile up: a worker
    // that sees half the requests stayed at 0.8-0.9 MB and scavenged twice as often per request as one process.
    const pids = [...workerPids(child.pid!).values()];
    expect(pids).toHaveLength(2);
    for (const pid of pids)
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain('--min-semi-space-size=16');
    const metrics = (await send(`${url}/metrics`)).body;
    // Summed over the two workers: each new space is 16 MiB (without the option, 1 MiB until load grows it).
    expect(sample(metrics, 'caliper_nodejs_heap_space_size_total_bytes', { space: 'new' })).toBeGreaterThanOrEqual(
      2 * 16 * 1024 * 1024,
    );
  });

  it('leaves idle workers asleep: no per-worker timer wakes them more than a few times a second', async () => {
    // Each wake-up of an idle worker costs CPU that N workers pay N times. Left: the event-loop lag monitor (10/s),
    // the registry follower's poll (4/s), the slow state check (1/s). Before: a 10 ms lag monitor and a 100 ms state
    // poll woke each worker ≈ 115 times a second.
    const pids = [...workerPids(child.pid!).values()];
    expect(pids).toHaveLength(2);
    const before = pids.map(mainThreadWakeups);
    const seconds = 3;
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const perSecond = pids.map((pid, i) => (mainThreadWakeups(pid) - before[i]!) / seconds);
    for (const rate of perSecond) expect(rate).toBeLessThan(25);
  });

  it('divides the cores: workers × instances × intra-op threads never exceed the usable cores', async () => {
    const answers = await Promise.all(Array.from({ length: 4 }, () => send(`${url}/v2/models/fraud/config`)));
    expect(new Set(answers.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    for (const answer of answers) {
      const config = JSON.parse(answer.body) as {
        instance_group: { count: number }[];
        parameters: Record<string, { string_value: string }>;
      };
      const threads = Number(config.parameters.caliper_intra_op_threads!.string_value);
      expect(threads).toBe(Math.max(1, Math.floor(Math.floor(usableCores() / 2) / config.instance_group[0]!.count)));
      if (usableCores() >= 2) expect(2 * config.instance_group[0]!.count * threads).toBeLessThanOrEqual(usableCores());
    }
  });

  it('answers from both workers over HTTP and gRPC, and /metrics counts every request once', async () => {
    const answers = await Promise.all(Array.from({ length: 40 }, () => predict()));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    const byWorker = new Map<string, number>();
    for (const a of answers) byWorker.set(a.worker ?? '?', (byWorker.get(a.worker ?? '?') ?? 0) + 1);
    expect([...byWorker.keys()].sort()).toEqual(['1', '2']);

    // Ten gRPC channels of their own (local subchannel pools): ten connections, handed out in turn.
    const clients = Array.from(
      { length: 10 },
      () =>
        new GrpcInferenceClient({
          address: grpcAddress,
          channelOptions: { 'grpc.use_local_subchannel_pool': 1 },
        }),
    );
    try {
      const features = new Float32Array(10).fill(0.5);
      const results = await Promise.all(
        clients.map((c) => c.infer('fraud', [{ name: 'features', datatype: 'FP32', shape: [1, 10], data: features }])),
      );
      expect(results).toHaveLength(10);
    } finally {
      for (const c of clients) c.close();
    }

    const metrics = (await send(`${url}/metrics`)).body;
    expect(sample(metrics, 'caliper_requests_total', { model: 'fraud', protocol: 'predict', outcome: 'success' })).toBe(
      40,
    );
    expect(sample(metrics, 'caliper_requests_total', { model: 'fraud', protocol: 'grpc', outcome: 'success' })).toBe(
      10,
    );
    expect(sample(metrics, 'caliper_request_duration_seconds_count', { model: 'fraud', stage: 'total' })).toBe(50);
    // One series per label set (summed over workers), not one per worker.
    expect(metrics.match(/^caliper_request_duration_seconds_count\{[^}]*stage="total"[^}]*\} /gm)).toHaveLength(1);
  });

  it('merges statistics and the SLA over workers: counts summed, percentiles over every worker’s samples', async () => {
    const stats = JSON.parse((await send(`${url}/v2/models/fraud/stats`)).body) as {
      model_stats: {
        inference_stats: { success: { count: number } };
        latency_us: { total: { count: number; p50: number; p99: number } };
      }[];
    };
    expect(stats.model_stats).toHaveLength(1);
    const [version] = stats.model_stats;
    expect(version!.inference_stats.success.count).toBe(50);
    expect(version!.latency_us.total.count).toBe(50);
    expect(version!.latency_us.total.p99).toBeGreaterThanOrEqual(version!.latency_us.total.p50);
    const sla = JSON.parse((await send(`${url}/models/fraud/sla`)).body) as { samples: number; p99_ms: number };
    expect(sla.samples).toBe(50);
    expect(sla.p99_ms).toBeGreaterThan(0);
    const unknown = await send(`${url}/models/nope/sla`);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toContain('CALIPER_MODEL_NOT_FOUND');
  });

  it('answers gRPC ModelStatistics merged over workers, as REST /stats: counts equal to the requests sent', async () => {
    type Stats = { model_stats: Record<string, unknown>[] };
    /** Successes, inferences run (cache misses) and model executions of each version, as numbers. */
    const counts = (stats: Stats): number[][] =>
      stats.model_stats.map((s) => [
        Number((s.inference_stats as { success: { count: unknown } }).success.count),
        Number(s.inference_count),
        Number(s.execution_count),
      ]);
    const rest = async (): Promise<number[][]> =>
      counts(JSON.parse((await send(`${url}/v2/models/fraud/stats`)).body) as Stats);
    const [[before]] = (await rest()) as [[number]];
    const answers = await Promise.all(Array.from({ length: 20 }, () => predict()));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    expect(new Set(answers.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    const merged = await rest();
    expect(merged[0]![0]).toBe(before + 20);

    // Six channels of their own (local subchannel pools): six connections, handed to the workers in turn; each
    // worker answered only part of the requests, so only a merged answer counts all of them.
    const clients = Array.from(
      { length: 6 },
      () => new GrpcInferenceClient({ address: grpcAddress, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } }),
    );
    try {
      const overGrpc = await Promise.all(clients.map((c) => c.rpc('ModelStatistics', { name: 'fraud', version: '' })));
      for (const stats of overGrpc) expect(counts(stats as unknown as Stats)).toEqual(merged);
      const unknown = await clients[0]!.rpc('ModelStatistics', { name: 'nope', version: '' }).catch((e: unknown) => e);
      expect(unknown).toMatchObject({ grpcCode: status.NOT_FOUND, code: 'CALIPER_MODEL_NOT_FOUND' });
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('keeps ONNX Runtime’s telemetry off in every worker: no device id or event cache written', async () => {
    // onnxruntime-node >= 1.29 on Linux keeps $HOME/.cache/Microsoft/DeveloperTools/.onnxruntime (a device id and
    // an SQLite event cache) and wakes every few seconds to upload, in each process that loads a model.
    const answers = await Promise.all(Array.from({ length: 20 }, () => predict()));
    expect(new Set(answers.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    await new Promise((r) => setTimeout(r, 1000));
    expect(existsSync(join(userHome(), '.cache', 'Microsoft'))).toBe(false);
  });

  it('applies /v2/repository unload and load in every worker and answers once all have', async () => {
    // Readiness follows in every worker by the time the answer comes.
    const readiness = async (): Promise<Set<string>> =>
      new Set(
        (await Promise.all(Array.from({ length: 4 }, () => send(`${url}/v2/health/ready`)))).map(
          (a) => `${a.worker}:${a.status}`,
        ),
      );
    const unloaded = await admin('/v2/repository/models/fraud/unload', {});
    expect(unloaded.status).toBe(200);
    expect(await readiness()).toEqual(new Set(['1:503', '2:503']));
    const gone = await Promise.all(Array.from({ length: 8 }, () => predict()));
    expect(new Set(gone.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    expect(gone.map((a) => a.status)).toEqual(gone.map(() => 404));
    const loaded = await admin('/v2/repository/models/fraud/load', {});
    expect(loaded.status).toBe(200);
    expect(await readiness()).toEqual(new Set(['1:200', '2:200']));
    const back = await Promise.all(Array.from({ length: 8 }, () => predict()));
    expect(new Set(back.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    expect(back.map((a) => a.status)).toEqual(back.map(() => 200));
  });

  it('swaps every worker on a promote under load with 0 non-2xx', async () => {
    const load = autocannon({
      url: `${url}/models/fraud/predict`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: BODY,
      connections: 8,
      duration: 4,
    });
    await new Promise((r) => setTimeout(r, 1000));
    const promoted = await admin('/v2/repository/models/fraud/promote', { version: 2, stage: 'Production' });
    expect(promoted.status).toBe(200);
    // Answered after every worker read the registry again: fresh connections to both see version 2 at once.
    const after = await Promise.all(Array.from({ length: 8 }, () => predict()));
    expect(new Set(after.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    expect(after.map((a) => JSON.parse(a.body).model_version)).toEqual(after.map(() => '2'));
    const result = await load;
    expect(result.non2xx).toBe(0);
    expect(result.errors).toBe(0);
    expect(result.requests.total).toBeGreaterThan(50);
  });

  it('splits canary traffic the same in every worker: a routing key gets one version whichever worker answers', async () => {
    const split = await admin('/v2/repository/models/fraud/traffic', { canary: { target: '1', weight: 0.5 } });
    expect(split.status).toBe(200);
    const keys = Array.from({ length: 12 }, (_, i) => `customer-${i}`);
    const versionsByKey = new Map<string, Set<string>>();
    const workersByKey = new Map<string, Set<string>>();
    const workers = new Set<string>();
    // Each key sent 4 times in a row, each on a connection of its own: the primary hands them to the workers in turn.
    for (const key of keys) {
      for (let i = 0; i < 4; i++) {
        const answer = await send(`${url}/models/fraud/predict`, {
          body: BODY,
          headers: { 'x-caliper-routing-key': key },
        });
        expect(answer.status).toBe(200);
        workers.add(answer.worker!);
        versionsByKey.set(key, (versionsByKey.get(key) ?? new Set()).add(JSON.parse(answer.body).model_version));
        workersByKey.set(key, (workersByKey.get(key) ?? new Set()).add(answer.worker!));
      }
    }
    expect([...workersByKey.values()].filter((w) => w.size === 2).length).toBeGreaterThanOrEqual(keys.length / 2);
    expect(workers).toEqual(new Set(['1', '2']));
    for (const seen of versionsByKey.values()) expect(seen.size).toBe(1);
    const versions = new Set([...versionsByKey.values()].flatMap((s) => [...s]));
    expect(versions).toEqual(new Set(['1', '2']));
    expect((await admin('/v2/repository/models/fraud/traffic', {})).status).toBe(200);
  });

  it('restarts a worker killed with SIGKILL while the other keeps serving its connections without a failure', async () => {
    // Keep-alive clients, one connection each; the primary hands the connections out in turn.
    const clients = Array.from({ length: 8 }, () => ({
      agent: new Agent({ keepAlive: true, maxSockets: 1 }),
      worker: undefined as string | undefined,
      ok: 0,
      okAfterKill: 0,
      failures: [] as string[],
    }));
    let killed = false;
    let stop = false;
    const loops = clients.map(async (client) => {
      while (!stop) {
        const answer = await predict(client.agent);
        if (answer.status === 200) {
          client.worker ??= answer.worker;
          if (answer.worker !== client.worker) client.failures.push(`moved to worker ${answer.worker}`);
          client.ok++;
          if (killed) client.okAfterKill++;
        } else {
          client.failures.push(answer.error ?? `HTTP ${answer.status}`);
          return;
        }
      }
    });
    await waitFor(async () => clients.every((c) => c.ok > 0), 'every client answered', 20_000);
    const slots = new Set(clients.map((c) => c.worker));
    expect(slots).toEqual(new Set(['1', '2']));
    const victim = '2';
    const pids = workerPids(child.pid!);
    process.kill(pids.get(victim)!, 'SIGKILL');
    killed = true;
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await Promise.all(loops);
    for (const c of clients) c.agent.destroy();
    const survivors = clients.filter((c) => c.worker !== victim);
    expect(survivors.length).toBeGreaterThan(0);
    for (const c of survivors) {
      expect(c.failures).toEqual([]);
      expect(c.okAfterKill).toBeGreaterThan(0);
    }
    // The killed worker comes back: ready again, and new connections reach it.
    await waitFor(ready, 'the restarted worker ready', 90_000);
    const newPids = workerPids(child.pid!);
    expect(newPids.get(victim)).not.toBe(pids.get(victim));
    const after = await Promise.all(Array.from({ length: 8 }, () => predict()));
    expect(after.map((a) => a.status)).toEqual(after.map(() => 200));
    expect(new Set(after.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    // It applied the model control done before it started (unload, load), and follows the promote.
    expect(after.map((a) => JSON.parse(a.body).model_version)).toEqual(after.map(() => '2'));
    expect(output).toMatch(/worker 2 \(pid \d+\) exited \(SIGKILL\); the others keep serving; restarting it in \d+ ms/);
  });

  it('drains every worker on SIGTERM: no resets, no failed requests, exit 0', async () => {
    const tally = { ok: 0, failed: [] as string[], closedBy: 0 };
    let signalled = false;
    const loops = Array.from({ length: 16 }, async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (;;) {
          const answer = await predict(agent);
          if (answer.status !== 200) {
            tally.failed.push(answer.error ?? `HTTP ${answer.status}`);
            return;
          }
          tally.ok++;
          if (answer.connection === 'close') {
            tally.closedBy++;
            return;
          }
          if (!signalled && tally.ok > 200) {
            signalled = true;
            child.kill('SIGTERM');
          }
        }
      } finally {
        agent.destroy();
      }
    });
    const [code] = (await Promise.all([once(child, 'exit'), Promise.all(loops)]))[0] as [number | null];
    expect(tally.failed).toEqual([]);
    expect(tally.closedBy).toBe(16);
    expect(code).toBe(0);
  });
});
