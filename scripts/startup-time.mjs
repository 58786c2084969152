#!/usr/bin/env node
// Start-up time: from spawning `caliper serve <dir>` to the first 200 from GET /v2/health/ready (models loaded and
// warmed). Usage: node scripts/startup-time.mjs [--runs N] [--entry bin/caliper.js] [model dir, default examples]
// Prints each run and the medians in milliseconds: wall time, and the CPU time (user + system, all threads) the server
// process had used when it became ready, read from /proc (Linux), which a busy machine inflates far less.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { get } from 'node:http';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const at = args.indexOf(name);
  if (at === -1) return fallback;
  const [, value] = args.splice(at, 2);
  return value;
};
const runs = Number(flag('--runs', '5'));
const entry = flag('--entry', 'bin/caliper.js');
const models = args[0] ?? 'examples';

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
      .listen(0, '127.0.0.1', () => {
        const { port } = server.address();
        server.close(() => resolve(port));
      })
      .on('error', reject);
  });
}

/** utime + stime of a process in milliseconds (clock ticks of 10 ms), or NaN off Linux. */
function cpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

function ready(port) {
  return new Promise((resolve) => {
    get({ host: '127.0.0.1', port, path: '/v2/health/ready', agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    }).on('error', () => resolve(false));
  });
}

async function startOnce() {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [entry, 'serve', models, '--port', String(port)], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' },
  });
  try {
    while (!(await ready(port))) {
      if (child.exitCode !== null) throw new Error(`${entry} exited with code ${child.exitCode}`);
      if (performance.now() - started > 60_000) throw new Error('not ready within 60 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    return { wall: performance.now() - started, cpu: cpuMs(child.pid) };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
}

const walls = [];
const cpus = [];
for (let i = 0; i < runs; i++) {
  const { wall, cpu } = await startOnce();
  walls.push(wall);
  cpus.push(cpu);
  console.log(`run ${i + 1}: ${wall.toFixed(0)} ms wall, ${cpu.toFixed(0)} ms CPU`);
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)].toFixed(0);
console.log(
  `${entry} serve ${models}: median ${median(walls)} ms wall (min ${Math.min(...walls).toFixed(0)}), ` +
    `${median(cpus)} ms CPU, over ${runs} runs`,
);
