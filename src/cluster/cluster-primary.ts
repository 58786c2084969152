import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../observability/logger.ts';
import { WORKER_CORES_ENV } from '../system/usable-cores.ts';
import {
  type Ask,
  type CollectedPart,
  type ControlAnswer,
  type ControlRequest,
  type HelloAnswer,
  type LoadReport,
  type LoadVerdict,
  PendingAnswers,
  type PrimaryQuestion,
  type ToPrimary,
  type ToWorker,
  WORKER_ENV,
  type WorkerMemory,
  type WorkerQuestion,
} from './cluster-protocol.ts';
import { workerExecArgv } from './worker-exec-argv.ts';

export interface ClusterPrimaryOptions {
  /** Worker processes to keep running (>= 1). */
  workers: number;
  /** Cores the workers divide: each gets max(1, floor(cores / workers)) for its model instances' threads. */
  cores: number;
  /** The HTTP port every worker shares (already chosen: not 0). */
  httpPort: number;
  /** The gRPC port every worker shares (not 0), when gRPC is served. */
  grpcPort?: number;
  logger: Logger;
  /** How long SIGTERM waits for the workers to drain before the primary exits anyway (ms). */
  drainTimeoutMs: number;
  /** First restart delay after a crash (ms, default 250); doubled per crash in a row, up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
}

type Phase = 'starting' | 'loaded' | 'serving' | 'down';

interface Slot {
  slot: number;
  worker?: Worker;
  phase: Phase;
  ready: boolean;
  models: string[];
  report?: LoadReport;
  pending: PendingAnswers;
  /** Crashes in a row (reset once a worker served for STABLE_MS). */
  crashes: number;
  servingSince?: number;
  memory?: WorkerMemory;
  restartTimer?: NodeJS.Timeout;
}

/** A worker that served this long before dying starts again after the first backoff step. */
const STABLE_MS = 30_000;
const COLLECT_TIMEOUT_MS = 10_000;
const CONTROL_TIMEOUT_MS = 600_000;
const MiB = 1024 * 1024;

/**
 * The primary of `caliper serve --workers N`: forks N workers (node:cluster; the primary accepts connections on
 * the HTTP and gRPC ports and hands them to the workers in turn), restarts a worker that dies with exponential
 * backoff while the others serve, lets a worker take traffic only once it loaded every model the others serve,
 * relays the workers' questions (aggregates, model control) to all of them, and on SIGTERM drains every worker.
 * Resolves when the server has stopped; the exit code to use is the resolved value.
 */
export class ClusterPrimary {
  private readonly slots: Slot[] = [];
  private readonly secret = randomBytes(24).toString('hex');
  /** Model-control requests every worker applied, in order: replayed by a worker started later. */
  private readonly controlLog: ControlRequest[] = [];
  private initialGateOpen = false;
  private stopping = false;
  private startupFailure: string | undefined;
  private resolveStopped: ((code: number) => void) | undefined;
  private lastNotReady = '';
  private everServed = false;

  constructor(private readonly options: ClusterPrimaryOptions) {}

  /** Forks the workers; resolves with the process exit code once they have all stopped. */
  run(): Promise<number> {
    const { options } = this;
    // Each worker keeps a young generation of its own size (workerExecArgv): one that sees 1/N of the requests would
    // otherwise stay at V8's smallest and scavenge about twice as often per request as one process.
    cluster.setupPrimary({
      serialization: 'advanced',
      execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS),
    });
    cluster.on('exit', (worker, code, signal) => this.onExit(worker, code, signal));
    const perWorker = Math.max(1, Math.floor(options.cores / options.workers));
    options.logger.info(
      { workers: options.workers, cores: options.cores, cores_per_worker: perWorker },
      `starting ${options.workers} workers on ${options.cores} usable cores (${perWorker} per worker for model instances' threads)`,
    );
    for (let i = 1; i <= options.workers; i++) {
      const slot: Slot = {
        slot: i,
        phase: 'starting',
        ready: false,
        models: [],
        pending: new PendingAnswers(),
        crashes: 0,
      };
      this.slots.push(slot);
      this.fork(slot);
    }
    process.once('SIGTERM', () => this.stop('SIGTERM'));
    process.once('SIGINT', () => this.stop('SIGINT'));
    return new Promise((resolve) => {
      this.resolveStopped = resolve;
    });
  }

  private fork(slot: Slot): void {
    const { options } = this;
    const env: Record<string, string> = {
      [WORKER_ENV.slot]: String(slot.slot),
      [WORKER_ENV.httpPort]: String(options.httpPort),
      [WORKER_CORES_ENV]: String(Math.max(1, Math.floor(options.cores / options.workers))),
      ...(options.grpcPort !== undefined ? { [WORKER_ENV.grpcPort]: String(options.grpcPort) } : {}),
    };
    const worker = cluster.fork(env);
    slot.worker = worker;
    slot.phase = 'starting';
    slot.ready = false;
    slot.report = undefined;
    slot.pending = new PendingAnswers();
    worker.on('message', (message: ToPrimary) => this.onMessage(slot, worker, message));
    this.broadcastState();
  }

  private send(worker: Worker, message: ToWorker): void {
    if (worker.isConnected()) worker.send(message);
  }

  private ask(slot: Slot, question: PrimaryQuestion, timeoutMs: number): Promise<unknown> {
    const worker = slot.worker;
    if (!worker) return Promise.reject(new Error(`worker ${slot.slot} is not running`));
    const { id, answer } = slot.pending.open(timeoutMs, `worker ${slot.slot} (${question.type})`);
    this.send(worker, { kind: 'ask', id, question });
    return answer;
  }

  private serving(): Slot[] {
    return this.slots.filter((s) => s.phase === 'serving');
  }

  private onMessage(slot: Slot, worker: Worker, message: ToPrimary): void {
    if (slot.worker !== worker) return;
    if (message.kind === 'reply') {
      slot.pending.settle(message);
      return;
    }
    if (message.kind === 'notice') {
      const notice = message.notice;
      if (notice.type === 'listening') {
        slot.phase = 'serving';
        this.everServed = true;
        slot.servingSince = Date.now();
        slot.memory = notice.memory;
        this.options.logger.info(
          {
            worker: slot.slot,
            pid: worker.process.pid,
            rss_mib: Math.round(notice.memory.rss / MiB),
            heap_mib: Math.round(notice.memory.heapUsed / MiB),
            external_mib: Math.round(notice.memory.external / MiB),
          },
          `worker ${slot.slot} (pid ${worker.process.pid}) serving: ${Math.round(notice.memory.rss / MiB)} MiB resident (its own model sessions)`,
        );
        if (this.slots.every((s) => s.phase === 'serving' && s.memory)) {
          const total = this.slots.reduce((n, s) => n + (s.memory?.rss ?? 0), 0);
          this.options.logger.info(
            { workers: this.slots.length, rss_total_mib: Math.round(total / MiB) },
            `all ${this.slots.length} workers serving on port ${this.options.httpPort}${this.options.grpcPort !== undefined ? ` (gRPC ${this.options.grpcPort})` : ''}: ${Math.round(total / MiB)} MiB resident in all`,
          );
        }
      } else {
        slot.ready = notice.ready;
        slot.models = notice.models;
      }
      this.broadcastState();
      return;
    }
    void this.answer(slot, worker, message);
  }

  private async answer(slot: Slot, worker: Worker, ask: Ask<WorkerQuestion>): Promise<void> {
    try {
      const answer = await this.handle(slot, ask.question);
      this.send(worker, { kind: 'reply', id: ask.id, answer });
    } catch (error) {
      this.send(worker, { kind: 'reply', id: ask.id, error: (error as Error).message });
    }
  }

  private async handle(slot: Slot, question: WorkerQuestion): Promise<unknown> {
    switch (question.type) {
      case 'hello':
        return { secret: this.secret, replay: [...this.controlLog] } satisfies HelloAnswer;
      case 'loaded':
        slot.report = question.report;
        slot.models = question.report.models;
        slot.phase = 'loaded';
        return this.verdict(slot);
      case 'gather': {
        const parts = await Promise.all(
          this.serving().map((s) =>
            this.ask(s, { type: 'collect', kind: question.kind, args: question.args }, COLLECT_TIMEOUT_MS).catch(
              () => undefined,
            ),
          ),
        );
        return parts.filter((p): p is CollectedPart<unknown> => p !== undefined);
      }
      case 'fanout': {
        const answers = await Promise.all(
          this.serving().map((s) =>
            this.ask(s, { type: 'apply', request: question.request }, CONTROL_TIMEOUT_MS).catch(
              (error: Error): ControlAnswer => ({
                slot: s.slot,
                statusCode: 503,
                body: JSON.stringify({ error: `worker ${s.slot}: ${error.message}` }),
                contentType: 'application/json',
              }),
            ),
          ),
        );
        const typed = answers as ControlAnswer[];
        if (typed.every((a) => a.statusCode < 300)) this.controlLog.push(question.request);
        return typed;
      }
      case 'sync-all':
        await Promise.all(
          this.serving().map((s) => this.ask(s, { type: 'sync' }, CONTROL_TIMEOUT_MS).catch(() => false)),
        );
        return true;
    }
  }

  /**
   * Whether a worker may listen. The first workers wait for each other; then a worker listens when it loaded every
   * model the serving workers serve (a worker that failed to load one takes no traffic, and is started again).
   */
  private async verdict(slot: Slot): Promise<LoadVerdict> {
    if (!this.initialGateOpen) {
      await new Promise<void>((resolve) => {
        const check = (): void => {
          if (this.stopping || this.slots.every((s) => s.phase !== 'starting')) resolve();
          else setTimeout(check, 20);
        };
        check();
      });
      this.initialGateOpen = true;
    }
    const report = slot.report!;
    if (this.stopping) return { go: false, reason: 'the server is stopping' };
    // What the serving workers serve; before any serves, what the first workers loaded between them.
    const peers =
      this.serving().length > 0
        ? this.serving()
        : this.slots.filter((s) => s.phase !== 'down' && s.report !== undefined && s.report.fatal === undefined);
    if (report.fatal !== undefined) {
      // Nothing to serve in any worker: the server does not start (as one process would exit).
      if (peers.length === 0 && !this.everServed) {
        this.startupFailure ??= report.fatal;
        void this.stop('startup failed');
      }
      if (peers.length === 0) return { go: false, reason: report.fatal };
    }
    const reference = new Set(peers.flatMap((s) => s.models));
    const missing = [...reference].filter((m) => !report.models.includes(m));
    if (missing.length > 0) {
      const reasons = report.failures
        .filter((f) => missing.includes(f.name))
        .map((f) => `${f.name}: ${f.reason}`)
        .join('; ');
      return {
        go: false,
        reason: `it did not load ${missing.join(', ')}, which the other workers serve${reasons ? ` (${reasons})` : ''}`,
      };
    }
    if (report.fatal !== undefined) return { go: false, reason: report.fatal };
    return { go: true };
  }

  /** Tells every worker which slots are not serving and ready (each worker is ready only when all are). */
  private broadcastState(): void {
    const notReady = this.slots.filter((s) => s.phase !== 'serving' || !s.ready).map((s) => s.slot);
    const key = notReady.join(',');
    if (key === this.lastNotReady) return;
    this.lastNotReady = key;
    for (const s of this.slots)
      if (s.worker) this.send(s.worker, { kind: 'notice', notice: { type: 'cluster-state', notReady } });
  }

  private onExit(worker: Worker, code: number | null, signal: string | null): void {
    const slot = this.slots.find((s) => s.worker === worker);
    if (!slot) return;
    slot.pending.failAll(`worker ${slot.slot} exited`);
    slot.worker = undefined;
    const wasServing = slot.phase === 'serving';
    slot.phase = 'down';
    slot.ready = false;
    this.broadcastState();
    if (this.stopping) {
      if (this.slots.every((s) => s.worker === undefined)) this.finish();
      return;
    }
    if (this.startupFailure !== undefined && this.serving().length === 0) {
      void this.stop('startup failed');
      return;
    }
    const stable = wasServing && slot.servingSince !== undefined && Date.now() - slot.servingSince >= STABLE_MS;
    slot.crashes = stable ? 1 : slot.crashes + 1;
    const base = this.options.backoffMs ?? 250;
    const delay = Math.min(this.options.maxBackoffMs ?? 10_000, base * 2 ** (slot.crashes - 1));
    this.options.logger.warn(
      {
        worker: slot.slot,
        pid: worker.process.pid,
        code,
        signal,
        restart_in_ms: delay,
        crashes_in_a_row: slot.crashes,
      },
      `worker ${slot.slot} (pid ${worker.process.pid}) exited (${signal ?? `code ${code}`}); the others keep serving; restarting it in ${delay} ms`,
    );
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (!this.stopping) this.fork(slot);
    }, delay);
  }

  /** Drains every worker (each finishes its requests and gRPC calls, then exits), then resolves run(). */
  private stop(why: string): void {
    if (this.stopping) return;
    this.stopping = true;
    const failed = this.startupFailure !== undefined && why === 'startup failed';
    if (!failed) this.options.logger.info(`${why}: draining ${this.serving().length} worker(s), then exiting`);
    for (const slot of this.slots) {
      if (slot.restartTimer) clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      slot.worker?.process.kill('SIGTERM');
    }
    const deadline = setTimeout(() => {
      this.options.logger.warn('drain timeout: killing the workers still running');
      for (const slot of this.slots) slot.worker?.process.kill('SIGKILL');
      this.finish();
    }, this.options.drainTimeoutMs + 5_000);
    deadline.unref();
    if (this.slots.every((s) => s.worker === undefined)) this.finish();
  }

  private finish(): void {
    const resolve = this.resolveStopped;
    this.resolveStopped = undefined;
    resolve?.(this.startupFailure !== undefined && this.serving().length === 0 ? 1 : 0);
  }

  /** Why the server could not start (every worker had nothing to serve), if so. */
  get failure(): string | undefined {
    return this.startupFailure;
  }
}
