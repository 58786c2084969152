/*
 * Worker-thread side of a one-pass job scored in two halves (half-scorer.ts): a DuckDB of its own on one thread and an
 * ONNX Runtime session of its own, so that this half's scoring function runs on this thread while the main thread
 * scores the first half: the JavaScript of the two halves (validation, preprocess, the model, postprocess) no longer
 * queues on one thread.
 */
import { parentPort } from 'node:worker_threads';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InThreadInstance } from '../../runtime/model-instance.ts';
import { duckdbConnection, setDuckdbThreads, sqlString } from '../io/duckdb-engine.ts';
import type { HalfReply, HalfRequest } from './half-protocol.ts';
import { traceMark } from '../phase-timer.ts';
import { predictionsSelect, registerScoreFunction, scoredSelect } from './score-function.ts';

/** Rows scored between two progress reports to the main thread. */
const REPORT_ROWS = 16_384;

const port = parentPort!;
setDuckdbThreads(1);
// Opened as the thread starts, while the main thread loads the model and plans the job.
const connecting = duckdbConnection();
port.postMessage({ kind: 'opening' } satisfies HalfReply);
connecting.catch(() => undefined);
let model: Promise<InThreadInstance> | undefined;
let connection: DuckDBConnection | undefined;
let interrupted = false;
let scoring: Promise<void> | undefined;

function reply(message: HalfReply): void {
  port.postMessage(message);
}

/** Thrown when the thread's DuckDB or the model's session could not be loaded. */
class Unavailable extends Error {}

async function score(request: Extract<HalfRequest, { kind: 'score' }>): Promise<void> {
  let c: DuckDBConnection;
  let instance: InThreadInstance;
  try {
    if (!model) throw new Error('no model was loaded');
    [c, instance] = await Promise.all([connecting, model]);
  } catch (error) {
    throw new Unavailable(error instanceof Error ? error.message : String(error));
  }
  connection = c;
  let unreported = 0;
  const fn = registerScoreFunction(c, request.plan, instance, (rows) => {
    unreported += rows;
    if (unreported >= REPORT_ROWS) {
      reply({ kind: 'rows', rows: unreported });
      unreported = 0;
    }
  });
  if (interrupted) throw new Error('interrupted before the scoring COPY started');
  traceMark('half worker: copy start');
  const select = (request.predictionsOnly ? predictionsSelect : scoredSelect)(request.from, request.plan, fn);
  await c.run(`COPY (${select}) TO ${sqlString(request.target)} (${request.copyOptions})`);
  traceMark('half worker: copy end');
  if (unreported > 0) reply({ kind: 'rows', rows: unreported });
}

port.on('message', (request: HalfRequest) => {
  switch (request.kind) {
    case 'load':
      model = InThreadInstance.load(0, request.spec);
      Promise.all([connecting, model]).then(
        () => {
          traceMark('half worker: ready');
          reply({ kind: 'ready' });
        },
        () => undefined,
      );
      model.catch(() => undefined);
      break;
    case 'score':
      // An interrupt stopped the score before it (the main thread sends one only while a score runs): a job whose
      // stitched halves failed gives this thread the rewrite's half next.
      interrupted = false;
      scoring = score(request);
      scoring.then(
        () => reply({ kind: 'scored' }),
        (error: unknown) =>
          reply({
            kind: error instanceof Unavailable ? 'unavailable' : 'failed',
            message: error instanceof Error ? error.message : String(error),
          }),
      );
      break;
    case 'interrupt':
      interrupted = true;
      connection?.interrupt();
      break;
    case 'close':
      // Ended here rather than terminated from outside: a thread terminated while DuckDB is still opening (a native
      // task that answers the thread when done) aborts the whole process.
      void (async () => {
        // A COPY still running is stopped first (its score then fails as interrupted).
        interrupted = true;
        connection?.interrupt();
        const [opened] = await Promise.allSettled([connecting, scoring]);
        if (opened.status === 'fulfilled') opened.value.closeSync();
        await model?.then(
          (instance) => instance.release(),
          () => undefined,
        );
        port.close();
      })();
      break;
  }
});
