/*
 * The baseline for serving throughput: a bare fastify route that parses the same JSON body as
 * POST /models/fraud_detector/predict (or /models/fashion_mnist/predict) and answers the same JSON, without a model or a
 * pipeline.
 * Usage: node --import tsx bench/echo-server.ts PORT [--workers N] [--touch-kb N]
 *
 * `--workers N` (N > 1): node:cluster, as `caliper serve --workers N` uses it (a primary hands each connection to the
 * next of N worker processes, each a whole server): the floor of what two processes sharing a port cost
 * (bench/workers.ts). Each worker is started with CALIPER_WORKER_SLOT and names itself in `x-caliper-worker`.
 */
import cluster from 'node:cluster';
import Fastify from 'fastify';

const port = Number(process.argv[2] ?? 8100);
const touchArg = process.argv.indexOf('--touch-kb');
/**
 * `--touch-kb N`: every request reads N KB of this process's own memory (one byte per 64-byte cache line), a working
 * set of a known size: what bench/workers.ts uses to see what two processes taking turns on one core pay for one.
 */
const touched = new Uint8Array(touchArg >= 0 ? Number(process.argv[touchArg + 1]) * 1024 : 0).map((_, i) => i & 0xff);
let touchSum = 0;
const touch = (): void => {
  // Small integers throughout (a growing sum would become a heap number: an allocation per line read).
  let sum = 0;
  for (let i = 0; i < touched.length; i += 64) sum = (sum + touched[i]!) & 0xffff;
  touchSum = (touchSum + sum) & 0xffff;
};
const workersArg = process.argv.indexOf('--workers');
const workers = workersArg >= 0 ? Number(process.argv[workersArg + 1]) : 1;
if (workers > 1 && cluster.isPrimary) {
  for (let slot = 1; slot <= workers; slot++) cluster.fork({ CALIPER_WORKER_SLOT: String(slot) });
  process.once('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    });
  });
} else await serve();

async function serve(): Promise<void> {
  const slot = process.env.CALIPER_WORKER_SLOT;
  const app = Fastify({ logger: false });
  if (slot !== undefined && cluster.isWorker)
    app.addHook('onRequest', async (_request, reply) => {
      reply.header('x-caliper-worker', slot);
    });
  const TOP3 = [
    { label: 'Ankle boot', probability: 0.9126 },
    { label: 'Sneaker', probability: 0.0712 },
    { label: 'Sandal', probability: 0.0123 },
  ];
  app.post<{ Params: { name: string } }>('/models/:name/predict', async (request) => {
    if (request.params.name === 'fashion_mnist') {
      const body = request.body as { pixels?: number[] };
      return {
        top3: Array.isArray(body.pixels) ? TOP3 : [],
        latency_ms: 0.012,
        model_name: 'fashion_mnist',
        model_version: '1',
      };
    }
    const body = request.body as { transaction_amount?: number };
    if (touched.length > 0) touch();
    return {
      fraud_probability: typeof body.transaction_amount === 'number' ? 0.14956027269363403 : 0,
      is_fraud: false,
      latency_ms: 0.012,
      model_name: 'fraud_detector',
      model_version: '1',
    };
  });
  app.get('/v2/health/ready', async () => ({ ready: true, touched: touchSum >= 0 }));
  await app.listen({ port, host: '127.0.0.1' });
}
