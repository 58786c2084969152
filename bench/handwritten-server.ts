/*
 * The alternative a TypeScript team weighs Caliper against: the server they would write themselves with fastify and
 * onnxruntime-node. A JSON schema on the body, the feature arithmetic by hand, one InferenceSession.run per request
 * (the package's own async API), the answer returned as an object. No batching, no metrics, no queue.
 * Usage: node --import tsx bench/handwritten-server.ts PORT fraud|fashion MODEL.onnx
 */
import Fastify from 'fastify';
import ort from 'onnxruntime-node';

const [portArg, kind, modelPath] = process.argv.slice(2);
const session = await ort.InferenceSession.create(modelPath!, { intraOpNumThreads: 1, interOpNumThreads: 1 });
const app = Fastify({ logger: false });
app.get('/v2/health/ready', async () => ({ ready: true }));

const CATEGORIES = ['grocery', 'electronics', 'travel', 'gaming', 'fuel', 'restaurant', 'jewelry', 'online'];
const LABELS = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

if (kind === 'fraud') {
  interface Transaction {
    transaction_amount: number;
    merchant_category: string;
    time_since_last_txn: number;
  }
  const schema = {
    body: {
      type: 'object',
      required: ['transaction_amount', 'merchant_category', 'time_since_last_txn'],
      properties: {
        transaction_amount: { type: 'number', minimum: 0 },
        merchant_category: { type: 'string', enum: CATEGORIES },
        time_since_last_txn: { type: 'number', minimum: 0 },
      },
    },
  };
  app.post<{ Body: Transaction }>('/models/fraud_detector/predict', { schema }, async (request) => {
    const started = performance.now();
    const t = request.body;
    const features = new Float32Array(10);
    features[0] = Math.log1p(t.transaction_amount);
    features[1] = Math.log1p(t.time_since_last_txn) / 10;
    features[2 + CATEGORIES.indexOf(t.merchant_category)] = 1;
    const { fraud_probability } = await session.run({ features: new ort.Tensor('float32', features, [1, 10]) });
    const probability = (fraud_probability!.data as Float32Array)[0]!;
    return {
      fraud_probability: probability,
      is_fraud: probability > 0.7,
      latency_ms: performance.now() - started,
      model_name: 'fraud_detector',
      model_version: '1',
    };
  });
} else {
  const schema = {
    body: {
      type: 'object',
      required: ['pixels'],
      properties: {
        pixels: { type: 'array', minItems: 784, maxItems: 784, items: { type: 'number', minimum: 0, maximum: 255 } },
      },
    },
  };
  app.post<{ Body: { pixels: number[] } }>('/models/fashion_mnist/predict', { schema }, async (request) => {
    const started = performance.now();
    const input = Float32Array.from(request.body.pixels, (p) => p / 255);
    const { logits } = await session.run({ pixels: new ort.Tensor('float32', input, [1, 784]) });
    const scores = logits!.data as Float32Array;
    const max = Math.max(...scores);
    const exp = Array.from(scores, (s) => Math.exp(s - max));
    const sum = exp.reduce((a, b) => a + b, 0);
    const top3 = exp
      .map((e, i) => ({ label: LABELS[i]!, probability: e / sum }))
      .sort((a, b) => b.probability - a.probability)
      .slice(0, 3);
    return { top3, latency_ms: performance.now() - started, model_name: 'fashion_mnist', model_version: '1' };
  });
}
await app.listen({ port: Number(portArg), host: '127.0.0.1' });
