// Worker-thread entry of the second-half scorer. In the compiled package the worker is JavaScript beside this file; in
// a source checkout it is TypeScript, and tsx's loader is registered for this thread only (loader hooks are per thread
// on Node 20).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = new URL('./half-worker.js', import.meta.url);
if (existsSync(fileURLToPath(compiled))) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./half-worker.ts');
}
