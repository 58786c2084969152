/*
 * The baseline for serving throughput: a bare fastify route that parses the same JSON body as
 * POST /models/fraud_detector/predict (or /models/fashion_mnist/predict) and answers the same JSON, without a model or a
 * pipeline.
 * Usage: node --import tsx bench/echo-server.ts PORT
 */
import Fastify from 'fastify';

const port = Number(process.argv[2] ?? 8100);
const app = Fastify({ logger: false });
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
  return {
    fraud_probability: typeof body.transaction_amount === 'number' ? 0.14956027269363403 : 0,
    is_fraud: false,
    latency_ms: 0.012,
    model_name: 'fraud_detector',
    model_version: '1',
  };
});
app.get('/v2/health/ready', async () => ({ ready: true }));
await app.listen({ port, host: '127.0.0.1' });
