import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CaliperError } from '../errors.ts';
import { freePort } from '../system/free-port.ts';

const CLI = fileURLToPath(new URL('../../bin/caliper.js', import.meta.url));

/** A `caliper serve` child process: the tuner measures each candidate in a server of its own, as in production. */
export interface ModelServerProcess {
  url: string;
  stop(): Promise<void>;
}

/** Starts `caliper serve DIR` on a free port and resolves once the server reports ready. */
export async function startModelServer(
  modelDir: string,
  options: { readyTimeoutMs?: number } = {},
): Promise<ModelServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'serve', modelDir, '--port', String(port), '--host', '127.0.0.1'], {
    env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null) {
      throw new CaliperError(
        'CALIPER_MODEL_LOAD_FAILED',
        `caliper serve ${modelDir} exited (code ${child.exitCode}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
      );
    }
    try {
      const response = await fetch(`${url}/v2/health/ready`);
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopChild(child, exited);
      throw new CaliperError(
        'CALIPER_MODEL_LOAD_FAILED',
        `caliper serve ${modelDir} was not ready within ${(options.readyTimeoutMs ?? 60_000) / 1000} s`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url, stop: () => stopChild(child, exited) };
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
