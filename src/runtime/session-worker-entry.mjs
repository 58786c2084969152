// Worker-thread entry of a model instance on its own thread (session-worker.ts).
import { importWorker } from '../system/worker-entry.mjs';

await importWorker(import.meta.url, 'session-worker');
