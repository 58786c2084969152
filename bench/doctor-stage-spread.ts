/*
 * Why the fraud story's inference stage spreads between two measurements at 20 requests/s (bench/doctor.ts: doctor's
 * "before" ÷ a separate bench 0.865, bench ÷ bench 0.915, while the features stage agreed within 3%). Fresh servers of
 * examples/fraud-doctor, measured as doctor's "before" is (1 s warm-up, 3 windows), in alternated rounds of:
 *   - 20 requests/s, the rest of the machine as it is;
 *   - 20 requests/s with a busy loop on another core (a neighbour's load: other work on a 2-core machine);
 *   - 100 requests/s (is the cost of one request higher when requests come seldom: caches gone cold, a core woken up?).
 * Per measurement and per window: answers, the stage means (features, inference) with their 95% intervals from the
 * answer count (mean ± 1.96·sd/√n), so a difference between measurements can be told from sampling.
 *
 *   flock /tmp/caliper-bench.lock nice -n 10 node --import tsx bench/doctor-stage-spread.ts   → bench/results/doctor-stage-spread.json
 *
 * SPREAD_ROUNDS (default 3) and SPREAD_WINDOW_S (default 5) set the length.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startModelServer } from '../src/bench/model-server-process.ts';
import { readRequestsFile } from '../src/bench/request-data.ts';
import { measureRound, type RequestSample, type StageMean, stageMeanOf } from '../src/doctor/stage-profile.ts';
import { USERS_CSV, writeScenario } from '../examples/fraud-doctor/scenario.ts';
import { startSlowFeatureSource } from '../examples/fraud-doctor/slow-feature-source.ts';

const ROUNDS = Number(process.env.SPREAD_ROUNDS ?? 3);
const WINDOW_MS = Number(process.env.SPREAD_WINDOW_S ?? 5) * 1000;
const WARMUP_MS = 1000;
const STAGES = ['features', 'inference'] as const;

interface Measurement {
  variant: string;
  round: number;
  load: number[];
  all: Record<string, StageMean | undefined>;
  windows: Record<string, StageMean | undefined>[];
}

const work = mkdtempSync(join(tmpdir(), 'caliper-stage-spread-'));
const source = await startSlowFeatureSource(USERS_CSV, 20);
const measurements: Measurement[] = [];
const started = performance.now();
const loadBefore = loadavg();
try {
  const fraud = writeScenario(join(work, 'fraud'), source.slowUrl);
  const data = readRequestsFile(fraud.requests);
  const variants = [
    { variant: '20 rps', rate: 20, hog: false },
    { variant: '20 rps + busy core', rate: 20, hog: true },
    { variant: '100 rps', rate: 100, hog: false },
  ];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    for (const { variant, rate, hog } of order) {
      const server = await startModelServer(fraud.modelDir);
      const busy = hog ? spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }) : undefined;
      try {
        const t0 = performance.now();
        const measured = await measureRound({
          url: server.url,
          model: 'fraud_detector',
          data,
          load: { mode: 'rate', rate },
          windowMs: WINDOW_MS,
          warmupMs: WARMUP_MS,
        });
        const from = t0 + WARMUP_MS;
        const byWindow: RequestSample[][] = [[], [], []];
        for (const s of measured.samples) byWindow[Math.min(2, Math.floor((s.at - from) / WINDOW_MS))]!.push(s);
        const means = (samples: RequestSample[]) =>
          Object.fromEntries(STAGES.map((stage) => [stage, stageMeanOf(samples, stage)]));
        const m: Measurement = {
          variant,
          round,
          load: loadavg().map((v) => Math.round(v * 100) / 100),
          all: means(measured.samples),
          windows: byWindow.map(means),
        };
        measurements.push(m);
        const text = (s: StageMean | undefined) =>
          s
            ? `${s.meanMs.toFixed(2)} ±${s.interval ? (s.interval.high - s.meanMs).toFixed(2) : '?'} (${s.answers})`
            : '-';
        console.log(
          `round ${round} ${variant.padEnd(20)} load ${m.load[0]}  inference ${text(m.all.inference)}  windows ${m.windows.map((w) => text(w.inference)).join(' | ')}  features ${text(m.all.features)}`,
        );
      } finally {
        busy?.kill('SIGKILL');
        await server.stop();
      }
    }
  }
} finally {
  await source.stop();
  rmSync(work, { recursive: true, force: true });
}
const output = {
  command: 'flock /tmp/caliper-bench.lock nice -n 10 node --import tsx bench/doctor-stage-spread.ts',
  date: new Date().toISOString(),
  loadAverage: {
    before: loadBefore.map((v) => Math.round(v * 100) / 100),
    after: loadavg().map((v) => Math.round(v * 100) / 100),
  },
  seconds: Math.round((performance.now() - started) / 1000),
  windowS: WINDOW_MS / 1000,
  measurements,
};
mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
writeFileSync(join(import.meta.dirname, 'results', 'doctor-stage-spread.json'), `${JSON.stringify(output, null, 2)}\n`);
console.log(`wrote bench/results/doctor-stage-spread.json (${output.seconds} s)`);
