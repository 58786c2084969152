/*
 * An open-loop load generator: requests are sent on a fixed schedule (constant rate) whatever the server's
 * speed, and each latency is measured from the moment the request was due, so a slow server cannot hide
 * queueing by slowing the client down (no coordinated omission).
 */
import { Agent, request } from 'node:http';

export interface OpenLoopResult {
  offeredRps: number;
  achievedRps: number;
  sent: number;
  completed: number;
  errors: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
}

export async function openLoop(options: { url: string; body: string; rate: number; durationS: number; sockets?: number }): Promise<OpenLoopResult> {
  const url = new URL(options.url);
  const agent = new Agent({ keepAlive: true, maxSockets: options.sockets ?? 64 });
  const payload = Buffer.from(options.body);
  const total = Math.floor(options.rate * options.durationS);
  const latencies = new Float64Array(total);
  let sent = 0;
  let completed = 0;
  let errors = 0;
  const started = performance.now();
  const interval = 1000 / options.rate;

  await new Promise<void>((resolve) => {
    const finish = (): void => {
      if (completed + errors === total) resolve();
    };
    const fire = (due: number): void => {
      const req = request({
        host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent,
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
      }, (res) => {
        res.on('data', () => {});
        res.on('end', () => {
          if (res.statusCode === 200) latencies[completed++] = performance.now() - due;
          else errors++;
          finish();
        });
      });
      req.on('error', () => { errors++; finish(); });
      req.end(payload);
    };
    const tick = (): void => {
      const now = performance.now();
      while (sent < total && started + sent * interval <= now) {
        fire(started + sent * interval);
        sent++;
      }
      if (sent < total) setImmediate(tick);
    };
    tick();
  });
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  const sorted = latencies.slice(0, completed).sort();
  const at = (q: number): number => Math.round((sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN) * 1000) / 1000;
  return {
    offeredRps: options.rate, achievedRps: Math.round(completed / elapsed), sent, completed, errors,
    latencyMs: { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: at(1) },
  };
}
