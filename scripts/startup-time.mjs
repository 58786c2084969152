#!/usr/bin/env node
// Start-up time of the `caliper` command: from spawning `ENTRY serve MODELS` to the first 200 from GET
// /v2/health/ready (models loaded and warmed), and the time `ENTRY --help` takes to print and exit.
//
// Usage: node scripts/startup-time.mjs [--runs N] [--entry FILE ...] [--installed] [--json FILE] [MODELS]
//   --entry FILE   a `caliper` entry script to time (repeatable; default bin/caliper.js)
//   --installed    also time the package as a user gets it: `npm pack` this checkout, `npm install` the tarball into
//                  an empty temporary project (offline from npm's cache, install scripts skipped: the same install
//                  as the package test's, scripts/packed-install.mjs) and run its node_modules/.bin/caliper
//   MODELS         what `serve` serves (default: the entry's package's examples/ folder, else ./examples)
// Entries are measured in alternating rounds (A B A B …), so a change in the machine's load hits them alike. Prints
// each run, the medians in milliseconds (wall time, and the CPU time, user + system of all threads, the server had
// used when it became ready, read from /proc on Linux, which a busy machine inflates far less than wall time), and the
// load average before and after.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { cleanEnv, packAndInstall } from './packed-install.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const at = args.indexOf(name);
  if (at === -1) return fallback;
  const [, value] = args.splice(at, 2);
  return value;
};
const flags = (name) => {
  const values = [];
  for (let value = flag(name); value !== undefined; value = flag(name)) values.push(value);
  return values;
};
const switchOn = (name) => {
  const at = args.indexOf(name);
  if (at !== -1) args.splice(at, 1);
  return at !== -1;
};
const runs = Number(flag('--runs', '5'));
const jsonFile = flag('--json');
const installed = switchOn('--installed');
const entries = flags('--entry').map((entry) => resolve(entry));
const modelsArg = args[0];

let work;
if (installed) {
  work = mkdtempSync(join(tmpdir(), 'caliper-startup-'));
  const repo = resolve(dirname(new URL(import.meta.url).pathname), '..');
  const { project, warnings } = packAndInstall(repo, work);
  for (const warning of warnings) console.error(warning);
  entries.push(realpathSync(join(project, 'node_modules', '.bin', 'caliper')));
}
if (entries.length === 0) entries.push(resolve('bin/caliper.js'));

/** The models to serve for an entry: MODELS, else the examples/ folder of the package the entry belongs to. */
function modelsFor(entry) {
  if (modelsArg) return modelsArg;
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'examples');
  }
  return 'examples';
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
      .listen(0, '127.0.0.1', () => {
        const { port } = server.address();
        server.close(() => resolvePort(port));
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
  return new Promise((resolveReady) => {
    get({ host: '127.0.0.1', port, path: '/v2/health/ready', agent: false }, (response) => {
      response.resume();
      resolveReady(response.statusCode === 200);
    }).on('error', () => resolveReady(false));
  });
}

async function serveOnce(entry) {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [entry, 'serve', modelsFor(entry), '--port', String(port)], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...cleanEnv, CALIPER_LOG_LEVEL: 'warn' },
  });
  try {
    while (!(await ready(port))) {
      if (child.exitCode !== null) throw new Error(`${entry} exited with code ${child.exitCode}`);
      if (performance.now() - started > 120_000) throw new Error('not ready within 120 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    return { wall: performance.now() - started, cpu: cpuMs(child.pid) };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
}

/** `ENTRY --help`: wall time, and user + system time from /usr/bin/time where it exists. */
function helpOnce(entry) {
  const time = existsSync('/usr/bin/time');
  const command = time ? '/usr/bin/time' : process.execPath;
  const commandArgs = time ? ['-f', 'cpu %U %S', process.execPath, entry, '--help'] : [entry, '--help'];
  const started = performance.now();
  const result = spawnSync(command, commandArgs, { env: cleanEnv, encoding: 'utf8' });
  const wall = performance.now() - started;
  if (result.status !== 0) throw new Error(`${entry} --help exited with ${result.status}: ${result.stderr}`);
  const cpu = /cpu ([\d.]+) ([\d.]+)/.exec(result.stderr);
  return { wall, cpu: cpu ? (Number(cpu[1]) + Number(cpu[2])) * 1000 : Number.NaN };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const loadBefore = loadavg();
const results = entries.map((entry) => ({ entry, models: modelsFor(entry), serve: [], help: [] }));
try {
  for (let round = 1; round <= runs; round++) {
    for (const result of results) {
      const serve = await serveOnce(result.entry);
      const help = helpOnce(result.entry);
      result.serve.push(serve);
      result.help.push(help);
      console.log(
        `round ${round} ${result.entry}: serve ${serve.wall.toFixed(0)} ms wall, ${serve.cpu.toFixed(0)} ms CPU; ` +
          `--help ${help.wall.toFixed(0)} ms wall, ${help.cpu.toFixed(0)} ms CPU`,
      );
    }
  }
} finally {
  if (work) rmSync(work, { recursive: true, force: true });
}
const loadAfter = loadavg();
const summary = results.map(({ entry, models, serve, help }) => ({
  entry,
  models,
  runs,
  serveWallMs: Math.round(median(serve.map((s) => s.wall))),
  serveMinWallMs: Math.round(Math.min(...serve.map((s) => s.wall))),
  serveCpuMs: Math.round(median(serve.map((s) => s.cpu))),
  helpWallMs: Math.round(median(help.map((h) => h.wall))),
  helpCpuMs: Math.round(median(help.map((h) => h.cpu))),
}));
for (const s of summary) {
  console.log(
    `${s.entry} serve ${s.models}: median ${s.serveWallMs} ms wall (min ${s.serveMinWallMs}), ${s.serveCpuMs} ms CPU; ` +
      `--help median ${s.helpWallMs} ms wall, ${s.helpCpuMs} ms CPU; ${runs} rounds`,
  );
}
const load = (l) => l.map((v) => v.toFixed(2)).join(' ');
console.log(
  `load average before ${load(loadBefore)}, after ${load(loadAfter)} (${process.arch}, Node ${process.version})`,
);
if (jsonFile) {
  writeFileSync(
    jsonFile,
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, loadBefore, loadAfter, results: summary }, null, 2)}\n`,
  );
}
