// What a worker thread's entry file does (session-worker-entry.mjs, half-worker-entry.mjs): in the compiled package the
// worker is JavaScript beside the entry; in a source checkout it is TypeScript, and tsx's loader is registered for this
// thread only (loader hooks are per thread on Node 20).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Imports module `name` (no extension) from the folder of `entryUrl`: `name`.js where built, else `name`.ts via tsx. */
export async function importWorker(entryUrl, name) {
  const compiled = new URL(`./${name}.js`, entryUrl);
  if (existsSync(fileURLToPath(compiled))) {
    await import(compiled.href);
    return;
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL(`./${name}.ts`, entryUrl).href);
}
