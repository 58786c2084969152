import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The README is executed: every ```sh block, in order, in one bash session, from the repository root, against the
 * quick start's `npm start` (port 8000) and a scratch HOME. Each command must exit 0 and each curl must get an HTTP
 * status below 400 (curl is wrapped only to read the status; the command line is the README's, as printed).
 * Not run: the quick start block itself (CI runs exactly those two lines), and ```text/```yaml/```ts blocks, which
 * are synopses and files rather than commands.
 */

const root = join(import.meta.dirname, '../..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

interface ReadmeBlock {
  heading: string;
  line: number;
  code: string;
}

/** The ```sh blocks of a Markdown text with the heading they sit under and their first line number. */
function shellBlocks(markdown: string): ReadmeBlock[] {
  const blocks: ReadmeBlock[] = [];
  let heading = '';
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^#{1,6} /.test(line)) heading = line.replace(/^#+ /, '');
    const fence = /^```(\w*)\s*$/.exec(line);
    if (!fence) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    if (fence[1] === 'sh') blocks.push({ heading, line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return blocks;
}

const PRELUDE = `set -euo pipefail
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
# curl as printed, plus a check of the HTTP status (the README's examples all succeed)
curl() {
  local out status
  out=$(command curl -sS -w '\\n__HTTP_STATUS__%{http_code}' "$@") || return $?
  status=\${out##*__HTTP_STATUS__}
  printf '%s\\n' "\${out%__HTTP_STATUS__*}"
  if [ "$status" -ge 400 ]; then echo "README command answered HTTP $status: curl $*" >&2; return 22; fi
}
`;

/** Ports the README's commands use: npm start's, and the extra servers of the admin and registry examples. */
const README_PORTS = [8000, 8010, 8020];

async function waitForReady(url: string, ms: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} not ready after ${ms} ms`);
}

describe('README', () => {
  const home = mkdtempSync(join(tmpdir(), 'caliper-readme-home-'));
  const env = { ...process.env, HOME: home, CALIPER_HOME: '', CALIPER_ADMIN_TOKEN: '', CALIPER_API_KEYS: '' };
  let server: ChildProcess;
  let serverLog = '';

  let script: ChildProcess | undefined;

  beforeAll(async () => {
    // The README's commands name these ports; a server left there by something else would answer in our place.
    for (const port of README_PORTS) {
      const taken = await fetch(`http://127.0.0.1:${port}/v2/health/live`).then(
        () => true,
        () => false,
      );
      if (taken) throw new Error(`port ${port} is already in use; the README's commands need it free`);
    }
    server = spawn('npm', ['start'], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d: Buffer) => {
      serverLog += d.toString();
    });
    server.stderr!.on('data', (d: Buffer) => {
      serverLog += d.toString();
    });
    await waitForReady('http://127.0.0.1:8000/v2/health/ready', 120_000, server);
  }, 150_000);

  afterAll(() => {
    for (const child of [server, script]) {
      if (child?.pid) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          /* gone */
        }
      }
    }
    rmSync(home, { recursive: true, force: true });
  });

  const blocks = shellBlocks(readme);
  const quickStart = blocks.filter((b) => b.heading === 'Quick start');

  it('keeps the quick start to two command lines: install and serve, install and test', () => {
    expect(quickStart).toHaveLength(1);
    const commands = quickStart[0]!.code
      .split('\n')
      .map((l) => l.replace(/#.*$/, '').trim())
      .filter(Boolean);
    expect(commands).toEqual(['npm install && npm start', 'npm install && npm test']);
  });

  it('runs every other shell block as printed, in order, each command succeeding', async () => {
    const runnable = blocks.filter((b) => b.heading !== 'Quick start');
    expect(runnable.length).toBeGreaterThan(1);
    const text =
      PRELUDE +
      runnable.map((b) => `echo "### README line ${b.line} (${b.heading})"\n${b.code}\n`).join('\n') +
      '\n# background jobs a block started are stopped with the session\nkill $(jobs -p) 2>/dev/null || true\nwait 2>/dev/null || true\n';
    const file = join(home, 'readme.sh');
    writeFileSync(file, text);
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn('bash', [file], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      script = child;
      let output = '';
      child.stdout!.on('data', (d: Buffer) => {
        output += d.toString();
      });
      child.stderr!.on('data', (d: Buffer) => {
        output += d.toString();
      });
      // 'exit', not 'close': a server a block left running may still hold the pipes.
      child.on('exit', (code) => {
        try {
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          /* all stopped */
        }
        resolve({ code, output });
      });
    });
    const lastBlock = [...result.output.matchAll(/### README line (\d+) \(([^)]*)\)/g)].pop();
    expect(
      result.code,
      `README block at line ${lastBlock?.[1]} (${lastBlock?.[2]}) failed:\n${result.output.slice(-3000)}\n--- npm start log ---\n${serverLog.slice(-1500)}`,
    ).toBe(0);
  }, 600_000);
});
