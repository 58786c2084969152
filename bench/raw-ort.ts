/*
 * Raw ONNX Runtime in-process: the ceiling for serving one model on one core, at batch 1 and batched.
 * Usage: node --import tsx bench/raw-ort.ts MODEL.onnx INPUT_NAME WIDTH SECONDS [BATCH,BATCH...]  → one JSON line on
 * stdout, rows per second at each batch size (1, 8, 32 and 64 unless sizes are given).
 */
import ort from 'onnxruntime-node';

const [modelPath, inputName, widthArg, secondsArg, batchesArg] = process.argv.slice(2);
const width = Number(widthArg);
const seconds = Number(secondsArg ?? 2);
const session = await ort.InferenceSession.create(modelPath!, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
});

async function rowsPerSecond(batch: number): Promise<number> {
  const data = new Float32Array(batch * width).map((_, i) => (i % 7) / 7);
  const feeds = { [inputName!]: new ort.Tensor('float32', data, [batch, width]) };
  for (let i = 0; i < 50; i++) await session.run(feeds);
  let runs = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  while (performance.now() < until) {
    await session.run(feeds);
    runs++;
  }
  return (runs * batch) / ((performance.now() - started) / 1000);
}

const result: Record<string, number> = {};
const batches = batchesArg ? batchesArg.split(',').map(Number) : [1, 8, 32, 64];
for (const batch of batches) result[`batch${batch}_rows_per_s`] = Math.round(await rowsPerSecond(batch));
console.log(JSON.stringify(result));
await session.release();
