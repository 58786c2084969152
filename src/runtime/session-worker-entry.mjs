// Worker-thread entry: the worker is TypeScript, and tsx's loader is registered per thread.
import { register } from 'tsx/esm/api';

register();
await import('./session-worker.ts');
