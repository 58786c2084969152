import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import type { OrtFeeds } from '../onnx/ort-session.ts';
import { DATA_MOVEMENT_OPS } from '../onnx/data-movement-ops.ts';
import { disableOrtTelemetryUnlessAsked } from '../../runtime/ort-telemetry.ts';

// Before this module's first session (see ort-telemetry.ts): library users skip the CLI, which sets it first.
disableOrtTelemetryUnlessAsked();

/** Kernels ONNX Runtime ran for one inference, by op type, split into integer work, float work and the conversions between. */
export interface KernelSummary {
  /** Op type → kernels computing on 8-bit integers (QLinearConv, QGemm, MatMulInteger, a MaxPool on uint8 …). */
  quantized: Record<string, number>;
  /** Op type → compute kernels still running in float (Conv, FusedConv, MatMul, Gemm …). */
  float: Record<string, number>;
  /** Op type → QuantizeLinear/DequantizeLinear/DynamicQuantizeLinear kernels left at the float ↔ int8 boundaries. */
  boundaries: Record<string, number>;
  /** Per bucket, the nodes that ran as `OpType node-name` in run order, named as ORT's profiler names them (a fused node gets a new name, usually the original's with a suffix). */
  nodes: { quantized: string[]; float: string[]; boundaries: string[] };
}

const BOUNDARY_OPS = new Set(['QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear']);
/** Kernels that move or reshape data (including ORT's own layout conversions); not compute, not reported. */
const LAYOUT_KERNELS = new Set([
  ...DATA_MOVEMENT_OPS,
  'ReorderInput',
  'ReorderOutput',
  'MemcpyFromHost',
  'MemcpyToHost',
]);
const INTEGER_TYPES = new Set(['int8', 'uint8']);

interface ProfileEvent {
  cat?: string;
  name?: string;
  args?: { op_name?: string; input_type_shape?: Record<string, number[]>[] };
}

/**
 * Runs the model once with ONNX Runtime's profiler on and classifies each kernel that ran after ORT's graph
 * optimizations: a kernel reading int8/uint8 tensors is quantized work, the Q/DQ kernels are boundaries, the rest float.
 * This is what shows whether a QDQ model was fused into QLinear kernels or still computes in float.
 */
export async function profileKernels(model: Uint8Array, feeds: OrtFeeds): Promise<KernelSummary> {
  const dir = mkdtempSync(join(tmpdir(), 'caliper-profile-'));
  try {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 4,
      enableProfiling: true,
      profileFilePrefix: join(dir, 'profile'),
    });
    try {
      await session.run(feeds);
    } finally {
      session.endProfiling();
      await session.release();
    }
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    const events = file ? (JSON.parse(readFileSync(join(dir, file), 'utf8')) as ProfileEvent[]) : [];
    const summary: KernelSummary = {
      quantized: {},
      float: {},
      boundaries: {},
      nodes: { quantized: [], float: [], boundaries: [] },
    };
    const seen = new Set<string>();
    for (const event of events) {
      if (event.cat !== 'Node' || !event.name?.endsWith('_kernel_time') || seen.has(event.name)) continue;
      seen.add(event.name);
      const op = event.args?.op_name ?? 'unknown';
      if (LAYOUT_KERNELS.has(op)) continue;
      const types = (event.args?.input_type_shape ?? []).flatMap((entry) => Object.keys(entry));
      const kind = BOUNDARY_OPS.has(op)
        ? 'boundaries'
        : types.some((t) => INTEGER_TYPES.has(t))
          ? 'quantized'
          : 'float';
      summary[kind][op] = (summary[kind][op] ?? 0) + 1;
      summary.nodes[kind].push(`${op} ${event.name.slice(0, -'_kernel_time'.length)}`);
    }
    return summary;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
