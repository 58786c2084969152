/*
 * Worker-thread side of a model instance: owns one ONNX Runtime session, runs feeds it receives and
 * transfers the output buffers back (no JSON, no copies on the way out).
 */
import { parentPort } from 'node:worker_threads';
import { OnnxSession } from './onnx-session.ts';
import type { WorkerReply, WorkerRequest } from './worker-protocol.ts';
import { transferListOf } from './worker-protocol.ts';

let session: OnnxSession | undefined;

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(message, transfer);
}

parentPort!.on('message', (message: WorkerRequest) => {
  void handle(message);
});

async function handle(message: WorkerRequest): Promise<void> {
  try {
    switch (message.kind) {
      case 'load':
        session = await OnnxSession.create(message.spec);
        reply({ kind: 'loaded', id: message.id, signature: session.signature });
        break;
      case 'run': {
        if (!session) throw new Error('the session is not loaded');
        const started = performance.now();
        const outputs = session.run(message.feeds, message.outputNames);
        reply(
          { kind: 'result', id: message.id, outputs, computeMs: performance.now() - started },
          transferListOf(outputs),
        );
        break;
      }
      case 'release':
        await session?.release();
        session = undefined;
        reply({ kind: 'released', id: message.id });
        break;
    }
  } catch (error) {
    reply({ kind: 'error', id: message.id, message: error instanceof Error ? error.message : String(error) });
  }
}
