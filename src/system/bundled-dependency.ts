import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * CommonJS dependencies that the build (scripts/build.mjs) also writes as one file each under dist/vendor/, with the
 * file's name there. Each is ~70–90 small files in node_modules: Node resolves, reads and compiles every one of them on
 * each start, which cost `caliper batch` about 0.1 s of CPU for @duckdb/node-api and 0.05 s for yaml (measured on the
 * 2-vCPU bench machine); the bundle is the same code read as one file. The native parts are not bundled
 * (@duckdb/node-bindings stays a package the bundle requires).
 */
export const BUNDLED_DEPENDENCIES = {
  '@duckdb/node-api': 'duckdb-node-api.cjs',
  yaml: 'yaml.cjs',
} as const;

/** A package of BUNDLED_DEPENDENCIES. */
export type BundledDependency = keyof typeof BUNDLED_DEPENDENCIES;

const requireHere = createRequire(import.meta.url);

/**
 * The path of `name`'s one-file bundle in the build's vendor folder (`vendorDir`, default the vendor/ folder beside
 * this module's folder: dist/vendor/ for the built package), or undefined where that file does not exist (running
 * from the TypeScript sources, where src/vendor/ does not exist).
 */
export function bundledDependencyPath(
  name: BundledDependency,
  vendorDir: URL = new URL('../vendor/', import.meta.url),
): string | undefined {
  const file = fileURLToPath(new URL(BUNDLED_DEPENDENCIES[name], vendorDir));
  return existsSync(file) ? file : undefined;
}

/**
 * `require(name)`, from the build's one-file bundle when there is one (see BUNDLED_DEPENDENCIES), else from
 * node_modules. Synchronous, like `require`; throws what `require` throws when the package is missing.
 */
export function requireBundledDependency<T>(name: BundledDependency): T {
  return requireHere(bundledDependencyPath(name) ?? name) as T;
}
