import type { FastifyInstance } from 'fastify';
import type { ModelRepository } from '../../lifecycle/model-repository.ts';
import type { Logger } from '../../observability/logger.ts';
import { ServingMetrics } from '../../observability/metrics.ts';
import { ModelStatistics } from '../../observability/model-statistics.ts';
import { SlaMonitor } from '../../observability/sla-monitor.ts';
import type { RequestObserver } from '../request-observer.ts';

/** Metrics, statistics and SLA: open unless the server protects operations (src/server/auth.ts). */
const OPERATIONS = { config: { protection: 'operations' } } as const;

export interface LatencyObservability {
  metrics: ServingMetrics;
  statistics: ModelStatistics;
  sla: SlaMonitor;
}

/**
 * Hangs metrics, statistics and the SLA monitor on every inference request (whatever its protocol) and
 * serves them: GET /metrics (Prometheus), GET /v2/models[/{name}[/versions/{v}]]/stats (Triton-style
 * statistics with per-stage times), GET /models/{name}/sla.
 */
export function registerStatsRoutes(
  app: FastifyInstance,
  repository: ModelRepository,
  observer: RequestObserver,
  logger: Logger,
): LatencyObservability {
  const statistics = new ModelStatistics(repository);
  const sla = new SlaMonitor((model) => (repository.has(model) ? repository.get(model).config.sla : undefined));
  const metrics = new ServingMetrics(repository, () => observer.inflight, sla);
  sla.onBreach((breach) => {
    logger.warn(
      { model: breach.model, p99_ms: breach.p99Ms, budget_ms: breach.budgetMs, windows: breach.windows },
      `SLA breach: model ${breach.model} p99 ${breach.p99Ms.toFixed(2)} ms over its ${breach.budgetMs} ms budget for ${breach.windows} consecutive windows`,
    );
  });
  observer.onRequest((record) => {
    metrics.record(record);
    statistics.record(record);
    sla.record(record);
  });

  app.get('/metrics', { schema: { hide: true }, ...OPERATIONS }, async (_request, reply) =>
    reply.type(metrics.contentType).send(await metrics.text()),
  );

  app.get('/v2/models/stats', OPERATIONS, async () => statistics.stats());
  app.get<{ Params: { name: string } }>('/v2/models/:name/stats', OPERATIONS, async (request) =>
    statistics.stats(request.params.name),
  );
  app.get<{ Params: { name: string; version: string } }>(
    '/v2/models/:name/versions/:version/stats',
    OPERATIONS,
    async (request) => statistics.stats(request.params.name, request.params.version),
  );

  app.get<{ Params: { name: string } }>('/models/:name/sla', OPERATIONS, async (request) =>
    sla.status(repository.get(request.params.name).name),
  );

  return { metrics, statistics, sla };
}
