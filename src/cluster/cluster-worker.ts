import cluster from 'node:cluster';
import type { FastifyReply, FastifyRequest, onSendHookHandler, preHandlerHookHandler, RouteOptions } from 'fastify';
import { CaliperError, type CaliperErrorCode } from '../errors.ts';
import { createLogger } from '../observability/logger.ts';
import type { StatisticsSource } from '../observability/model-statistics.ts';
import { processCoreBudget } from '../system/usable-cores.ts';
import { startServing, type PreparedServer, type RunningServer, type ServeOptions } from '../server/serving.ts';
import {
  type Ask,
  type CollectArgs,
  type CollectedPart,
  type CollectKind,
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
  WORKER_HEADER,
  type WorkerQuestion,
} from './cluster-protocol.ts';
import {
  mergeMetrics,
  mergeModelStats,
  mergeSlaStatus,
  type MetricsPart,
  type SlaPart,
  type StatsPart,
} from './cluster-statistics.ts';

/** The header marking a model-control request the primary asked this worker to apply (so it is not fanned out again). */
const APPLY_HEADER = 'x-caliper-cluster-apply';
/** Routes answered for the whole server (every worker's part merged). */
const GATHERED_ROUTES = new Map<string, CollectKind>([
  ['/metrics', 'metrics'],
  ['/v2/models/stats', 'stats'],
  ['/v2/models/:name/stats', 'stats'],
  ['/v2/models/:name/versions/:version/stats', 'stats'],
  ['/models/:name/sla', 'sla'],
]);
/** Model control applied by every worker, answered once all have done it. */
const FANNED_OUT_ROUTES = new Set(['/v2/repository/models/:name/load', '/v2/repository/models/:name/unload']);
/** Registry changes: once the asking worker wrote them, every worker reads the registry again before the answer. */
const REGISTRY_ROUTES = new Set(['/v2/repository/models/:name/promote', '/v2/repository/models/:name/traffic']);

const GATHER_TIMEOUT_MS = 10_000;
const CONTROL_TIMEOUT_MS = 600_000;
/**
 * Readiness and the served models are reported to the primary when they may have changed (serving began, model control
 * applied, the registry read again, shutdown began); this slow poll only catches what changes on its own (the registry
 * follower's own polling). A poll every 100 ms woke each idle worker 10 times a second for nothing.
 */
const STATE_POLL_MS = 1000;

export interface ClusterWorkerSettings {
  /** True when the server follows a whole registry (nothing loaded is then not fatal). */
  followsWholeRegistry: boolean;
  /** What was asked for, for the "nothing could be loaded" message. */
  describe: string;
}

/** This worker's end of the IPC channel: questions to the primary, and handlers for the primary's questions. */
class PrimaryChannel {
  private readonly pending = new PendingAnswers();
  private readonly handlers: ((question: PrimaryQuestion) => Promise<unknown>)[] = [];
  notReady: number[] = [];

  constructor() {
    process.on('message', (message: ToWorker) => {
      if (message.kind === 'reply') this.pending.settle(message);
      else if (message.kind === 'notice') this.notReady = message.notice.notReady;
      else void this.answer(message);
    });
  }

  private async answer(ask: Ask<PrimaryQuestion>): Promise<void> {
    const handler = this.handlers[0];
    try {
      if (!handler) throw new Error('worker not serving yet');
      this.send({ kind: 'reply', id: ask.id, answer: await handler(ask.question) });
    } catch (error) {
      this.send({ kind: 'reply', id: ask.id, error: (error as Error).message });
    }
  }

  onQuestion(handler: (question: PrimaryQuestion) => Promise<unknown>): void {
    this.handlers[0] = handler;
  }

  send(message: ToPrimary): void {
    if (process.connected) process.send?.(message);
  }

  ask<T>(question: WorkerQuestion, timeoutMs: number): Promise<T> {
    const { id, answer } = this.pending.open(timeoutMs, `primary (${question.type})`);
    this.send({ kind: 'ask', id, question });
    return answer as Promise<T>;
  }

  close(reason: string): void {
    this.pending.failAll(reason);
  }
}

const codeOf = (error: unknown): string => (error instanceof CaliperError ? error.code : 'CALIPER_INTERNAL');

/** Throws the first error a worker answered (an unknown model is unknown everywhere), else the values. */
function valuesOf<T>(parts: readonly CollectedPart<T>[]): T[] {
  const failed = parts.find((p): p is Extract<CollectedPart<T>, { error: unknown }> => 'error' in p);
  if (failed) throw new CaliperError(failed.error.code as CaliperErrorCode, failed.error.message);
  return parts.map((p) => (p as { value: T }).value);
}

/**
 * Runs one worker of `caliper serve --workers N`: loads and serves the models as a single server would (its own
 * batcher, model instances and response cache), listens on the ports the primary shares out only once the primary
 * accepts what it loaded, and answers metrics, statistics, SLA, readiness and model control for the whole server
 * by asking the primary to gather every worker's part.
 */
export async function runClusterWorker(options: ServeOptions, settings: ClusterWorkerSettings): Promise<void> {
  if (!cluster.isWorker) throw new Error('runClusterWorker: not a cluster worker');
  const slot = Number(process.env[WORKER_ENV.slot]);
  const logger = (options.logger ?? createLogger()).child({ worker: slot });
  const channel = new PrimaryChannel();
  let secret = '';
  let server: RunningServer | undefined;
  // Off while this worker computes its own readiness for the primary (the primary combines every worker's).
  let countOthers = true;
  /** Tells the primary this worker's readiness and models if they changed (set once the server runs). */
  let stateMayHaveChanged = (): void => undefined;
  /** Every worker's part of one gathered answer (metrics, statistics, SLA), asked of the primary. */
  const gather = async <T>(kind: CollectKind, args: CollectArgs): Promise<T[]> =>
    valuesOf(await channel.ask<CollectedPart<T>[]>({ type: 'gather', kind, args }, GATHER_TIMEOUT_MS));
  /** The statistics extension's answer for the whole server: REST /stats and gRPC ModelStatistics both give it. */
  const statistics: StatisticsSource = {
    stats: async (name, version) =>
      mergeModelStats(
        await gather<StatsPart>('stats', {
          ...(name !== undefined ? { name } : {}),
          ...(version !== undefined ? { version } : {}),
        }),
      ),
  };

  const answerForCluster = async (request: FastifyRequest, reply: FastifyReply, route: string): Promise<void> => {
    const kind = GATHERED_ROUTES.get(route);
    if (kind !== undefined) {
      const params = request.params as CollectArgs;
      const args: CollectArgs = {
        ...(params.name !== undefined ? { name: params.name } : {}),
        ...(params.version !== undefined ? { version: params.version } : {}),
      };
      if (kind === 'metrics') {
        const merged = await mergeMetrics(await gather<MetricsPart>(kind, args));
        reply.type(merged.contentType).send(merged.text);
      } else if (kind === 'stats') reply.send(await statistics.stats(args.name, args.version));
      else reply.send(mergeSlaStatus(await gather<SlaPart>(kind, args)));
      return;
    }
    if (request.headers[APPLY_HEADER] !== secret) {
      const control: ControlRequest = {
        method: 'POST',
        url: request.url,
        headers: {
          ...(request.headers.authorization !== undefined ? { authorization: request.headers.authorization } : {}),
          'content-type': 'application/json',
        },
        ...(request.body !== undefined ? { payload: JSON.stringify(request.body) } : {}),
      };
      const answers = await channel.ask<ControlAnswer[]>({ type: 'fanout', request: control }, CONTROL_TIMEOUT_MS);
      // Every worker's answer agrees when all succeeded: this worker's is sent; otherwise the first failure.
      const chosen = answers.find((a) => a.statusCode >= 300) ?? answers.find((a) => a.slot === slot) ?? answers[0];
      if (!chosen) throw new CaliperError('CALIPER_INTERNAL', 'no worker applied the request');
      if (chosen.statusCode >= 300) reply.header('x-caliper-failed-worker', String(chosen.slot));
      reply.code(chosen.statusCode).type(chosen.contentType).send(chosen.body);
    }
  };
  /** Answers a gathered or fanned-out route for the whole server (a route-level preHandler of those routes only). */
  const answerForClusterHook =
    (route: string): preHandlerHookHandler =>
    (request, reply, done) => {
      answerForCluster(request, reply, route).then(
        () => {
          if (!reply.sent) done();
        },
        (error: Error) => done(error),
      );
    };
  /** After a registry change succeeded, every worker reads the registry again before the answer leaves. */
  const syncAllHook: onSendHookHandler = (_request, reply, payload, done) => {
    if (reply.statusCode >= 300) return done(null, payload);
    channel.ask({ type: 'sync-all' }, CONTROL_TIMEOUT_MS).then(
      () => done(null, payload),
      (error: Error) => {
        logger.warn(`not every worker read the registry again: ${error.message}`);
        done(null, payload);
      },
    );
  };
  /**
   * Hooks only the routes answered for the whole server (gathered, fanned out, registry changes): an inference
   * request runs no hook of the cluster's (the x-caliper-worker header is set with x-request-id).
   */
  const onRoute = (route: RouteOptions): void => {
    const withHook = <T>(existing: T | T[] | undefined, hook: T): T[] =>
      existing === undefined ? [hook] : Array.isArray(existing) ? [...existing, hook] : [existing, hook];
    if (GATHERED_ROUTES.has(route.url) || FANNED_OUT_ROUTES.has(route.url))
      route.preHandler = withHook(route.preHandler, answerForClusterHook(route.url));
    if (REGISTRY_ROUTES.has(route.url)) route.onSend = withHook(route.onSend, syncAllHook);
  };

  const prepare = async (prepared: PreparedServer): Promise<void> => {
    const { app, repository, observability, follower } = prepared;
    // Ready only when every worker is: the others not serving and ready count as models still loading.
    repository.addFollowedSource(() => ({
      failures: [],
      loading: countOthers ? channel.notReady.filter((s) => s !== slot).length : 0,
    }));

    channel.onQuestion(async (question) => {
      if (question.type === 'sync') {
        await follower?.sync();
        stateMayHaveChanged();
        return true;
      }
      if (question.type === 'apply') {
        const answer = await apply(question.request);
        stateMayHaveChanged();
        return answer;
      }
      try {
        return { slot, value: await collect(question.kind, question.args) };
      } catch (error) {
        return { slot, error: { code: codeOf(error), message: (error as Error).message } };
      }
    });

    const apply = async (control: ControlRequest): Promise<ControlAnswer> => {
      const answer = await app.inject({
        method: control.method,
        url: control.url,
        headers: { ...control.headers, [APPLY_HEADER]: secret },
        ...(control.payload !== undefined ? { payload: control.payload } : {}),
      });
      return {
        slot,
        statusCode: answer.statusCode,
        body: answer.body,
        contentType: String(answer.headers['content-type'] ?? 'application/json'),
      };
    };

    const collect = async (kind: CollectKind, args: CollectArgs): Promise<StatsPart | SlaPart | MetricsPart> => {
      const { statistics, sla, metrics } = observability;
      if (kind === 'stats') {
        const stats = statistics.stats(args.name, args.version);
        return {
          model_stats: stats.model_stats,
          samples: stats.model_stats.map((s) => {
            const name = String(s.name);
            const version = String(s.version);
            return { name, version, ...statistics.latencySamples(name, Number(version)) };
          }),
        };
      }
      if (kind === 'sla') {
        const name = repository.get(args.name ?? '').name;
        return { status: sla.status(name), samples: sla.samples(name) };
      }
      return {
        metrics: await metrics.registry.getMetricsAsJSON(),
        sla: repository.list().map((m) => ({ model: m.name, samples: sla.samples(m.name) })),
      };
    };

    const budget = processCoreBudget();
    for (const model of repository.list()) {
      const { count, intraOpThreads } = model.config.instances;
      if (count * intraOpThreads > budget)
        logger.warn(
          `model ${model.name}: instances.count ${count} × intra_op_threads ${intraOpThreads} exceeds this worker's share of the cores (${budget}): the workers oversubscribe the CPU; leave intra_op_threads out to have it divided`,
        );
    }
    const hello = await channel.ask<HelloAnswer>({ type: 'hello' }, GATHER_TIMEOUT_MS);
    secret = hello.secret;
    // Model control applied to the others while this worker was not there (it started later, or again).
    for (const control of hello.replay) {
      const answer = await apply(control);
      if (answer.statusCode >= 300)
        logger.warn({ url: control.url, status: answer.statusCode }, `replaying ${control.url} failed: ${answer.body}`);
    }
    const models = repository.list().map((m) => m.name);
    const report: LoadReport = {
      models,
      failures: repository.currentFailures().map((f) => ({ name: f.name, reason: f.reason })),
      ...(models.length === 0 && !settings.followsWholeRegistry
        ? {
            fatal: `no model could be loaded from ${settings.describe}${
              repository.currentFailures().length
                ? ` (${repository
                    .currentFailures()
                    .map((f) => `${f.name}: ${f.reason}`)
                    .join('; ')})`
                : ''
            }`,
          }
        : {}),
    };
    const verdict = await channel.ask<LoadVerdict>({ type: 'loaded', report }, CONTROL_TIMEOUT_MS);
    if (!verdict.go) throw new Error(verdict.reason);
  };

  const httpPort = Number(process.env[WORKER_ENV.httpPort] ?? options.port);
  const grpcPortEnv = process.env[WORKER_ENV.grpcPort];
  try {
    server = await startServing({
      ...options,
      logger,
      port: httpPort,
      ...(grpcPortEnv !== undefined ? { grpcPort: Number(grpcPortEnv) } : {}),
      statistics,
      prepare,
      responseHeaders: { [WORKER_HEADER]: String(slot) },
      onRoute,
    });
  } catch (error) {
    logger.error(`worker ${slot} takes no traffic: ${(error as Error).message}`);
    channel.close('worker stopped');
    process.exit(3);
  }
  const running = server;
  const memory = process.memoryUsage();
  channel.send({
    kind: 'notice',
    notice: {
      type: 'listening',
      memory: {
        rss: memory.rss,
        heapUsed: memory.heapUsed,
        external: memory.external,
        arrayBuffers: memory.arrayBuffers,
      },
    },
  });

  // Readiness and the models served, told to the primary whenever they change.
  let lastState = '';
  const reportState = (): void => {
    countOthers = false;
    const ownReady = running.repository.ready;
    countOthers = true;
    const ready = ownReady && !running.observer.closing;
    const models = running.repository.list().map((m) => m.name);
    const state = JSON.stringify([ready, models]);
    if (state === lastState) return;
    lastState = state;
    channel.send({ kind: 'notice', notice: { type: 'state', ready, models } });
  };
  reportState();
  stateMayHaveChanged = reportState;
  const poll = setInterval(reportState, STATE_POLL_MS);
  poll.unref();

  let closing: Promise<void> | undefined;
  const shutdown = (why: string): void => {
    if (closing) return;
    running.app.log.info(`${why}: worker ${slot} finishing in-flight requests, then exiting`);
    closing = running.close();
    // Draining: not ready any more, told at once.
    reportState();
    closing = closing.then(
      () => {
        clearInterval(poll);
        process.exit(0);
      },
      (error: Error) => {
        running.app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // The primary is gone (killed): nothing restarts or routes to this worker any more.
  process.on('disconnect', () => shutdown('primary gone'));
}
