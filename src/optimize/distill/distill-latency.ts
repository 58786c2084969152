import { sampleSize, type Dataset } from '../datasets/dataset.ts';
import { compareLatency, type LatencyComparison } from '../evaluate/latency.ts';
import { float32Tensor, type OrtSession } from '../onnx/ort-session.ts';

/**
 * Times teacher vs student (both sessions with 1 intra-op thread), interleaved, at each of `batchSizes` on the first
 * samples of `data` fed to `inputName` as [batch, ...sampleShape]. A batch larger than the data is skipped with a
 * warning pushed to `warnings`.
 */
export async function compareTeacherStudentLatency(
  teacher: OrtSession,
  student: OrtSession,
  data: Dataset,
  input: { name: string; sampleShape: number[] },
  batchSizes: readonly number[],
  warnings: string[],
): Promise<LatencyComparison[]> {
  const latency: LatencyComparison[] = [];
  for (const batchSize of batchSizes) {
    const rows = Math.min(batchSize, data.count);
    if (rows < batchSize) {
      warnings.push(`latency at batch ${batchSize} skipped: only ${data.count} samples`);
      continue;
    }
    const feeds = {
      [input.name]: float32Tensor(data.features.slice(0, rows * sampleSize(data)), [rows, ...input.sampleShape]),
    };
    latency.push(await compareLatency(teacher, student, feeds, batchSize));
  }
  return latency;
}
