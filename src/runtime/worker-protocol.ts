import type { ModelSignature } from './model-signature.ts';
import type { SessionSpec } from './onnx-session.ts';
import type { TensorMap } from './tensor.ts';

/** Messages between an instance and its worker thread. */
export type WorkerRequest =
  | { kind: 'load'; id: number; spec: SessionSpec }
  | { kind: 'run'; id: number; feeds: TensorMap; outputNames?: string[] }
  | { kind: 'release'; id: number };

export type WorkerReply =
  | { kind: 'loaded'; id: number; signature: ModelSignature }
  | { kind: 'result'; id: number; outputs: TensorMap; computeMs: number }
  | { kind: 'released'; id: number }
  | { kind: 'error'; id: number; message: string };

/**
 * The buffers that can be moved (not copied) to the other thread: only those a tensor owns entirely,
 * so transferring never detaches memory that something else still reads.
 */
export function transferListOf(tensors: TensorMap): ArrayBuffer[] {
  const list = new Set<ArrayBuffer>();
  for (const tensor of Object.values(tensors)) {
    const data = tensor.data;
    if (Array.isArray(data)) continue;
    const buffer = data.buffer;
    if (buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === buffer.byteLength)
      list.add(buffer);
  }
  return [...list];
}
