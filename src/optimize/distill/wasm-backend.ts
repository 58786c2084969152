import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

let ready: Promise<void> | undefined;

/**
 * Selects TensorFlow.js's wasm backend with the binaries shipped in node_modules (nothing is downloaded).
 * Node has no wasm threads for tfjs (its threaded build needs browser workers), so the thread count is a
 * request that only takes effect where the runtime supports it; 2 matches this project's 2-core machines.
 */
export function useWasmBackend(threads = 2): Promise<void> {
  ready ??= (async () => {
    const wasmFile = createRequire(import.meta.url).resolve(
      '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm',
    );
    setWasmPaths(`${dirname(wasmFile)}/`);
    setThreadsCount(threads);
    if (!(await tf.setBackend('wasm'))) throw new Error('the TensorFlow.js wasm backend failed to initialise');
    await tf.ready();
  })();
  return ready;
}

/** Threads the wasm backend actually uses (1 in Node). */
export function wasmThreads(): number {
  return getThreadsCount();
}
