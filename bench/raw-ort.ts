/*
 * Raw ONNX Runtime in-process: the ceiling for serving one model on one core, at batch 1 and batched.
 * Usage: node --import tsx bench/raw-ort.ts MODEL.onnx INPUT_NAME WIDTH SECONDS [BATCH,BATCH...]  → one JSON line on
 * stdout, rows per second and CPU µs per row at each batch size (1, 8, 32 and 64 unless sizes are given).
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

/**
 * Rows per second at `batch` (wall time), and µs of this process's CPU per row (CPU time: on a shared machine the
 * wall time also counts the time other processes held the core, the CPU time does not).
 */
async function measureBatch(batch: number): Promise<{ rowsPerSecond: number; cpuUsPerRow: number }> {
  const data = new Float32Array(batch * width).map((_, i) => (i % 7) / 7);
  const feeds = { [inputName!]: new ort.Tensor('float32', data, [batch, width]) };
  for (let i = 0; i < 50; i++) await session.run(feeds);
  let runs = 0;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const until = started + seconds * 1000;
  while (performance.now() < until) {
    await session.run(feeds);
    runs++;
  }
  const cpu = process.cpuUsage(cpuBefore);
  return {
    rowsPerSecond: (runs * batch) / ((performance.now() - started) / 1000),
    cpuUsPerRow: (cpu.user + cpu.system) / (runs * batch),
  };
}

const result: Record<string, number> = {};
const batches = batchesArg ? batchesArg.split(',').map(Number) : [1, 8, 32, 64];
for (const batch of batches) {
  const { rowsPerSecond, cpuUsPerRow } = await measureBatch(batch);
  result[`batch${batch}_rows_per_s`] = Math.round(rowsPerSecond);
  result[`batch${batch}_cpu_us_per_row`] = Math.round(cpuUsPerRow * 1000) / 1000;
}
console.log(JSON.stringify(result));
await session.release();
