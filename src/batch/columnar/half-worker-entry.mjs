// Worker-thread entry of the second-half scorer (half-worker.ts).
import { importWorker } from '../../system/worker-entry.mjs';

await importWorker(import.meta.url, 'half-worker');
