import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The layering rules of README "Layout", checked over the TypeScript sources (static `import`/`export … from`,
 * type-only imports included, as madge counts them; a lazy `import()` is not a load-time edge and is left out):
 * no import cycle between files, and nothing below src/server imports from it.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');

/** Folders above the server, which may import it: the CLI wires it up, the package entry re-exports it. */
const ABOVE_SERVER = ['cli/', 'server/', 'cluster/', 'index.ts'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|mts)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const STATIC_IMPORT = /^\s*(?:import|export)\s(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]/gm;

/** Each source file (relative to src/) → the source files it imports statically. */
function importGraph(files: readonly string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const targets: string[] = [];
    for (const match of text.matchAll(STATIC_IMPORT)) {
      const specifier = match[1]!;
      if (!specifier.startsWith('.')) continue;
      const target = resolve(dirname(file), specifier);
      if (target.startsWith(SRC)) targets.push(relative(SRC, target));
    }
    graph.set(relative(SRC, file), targets);
  }
  return graph;
}

/** Every cycle found by a depth-first walk, each as the files along it (first file repeated at the end). */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue;
      const seen = state.get(next);
      if (seen === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (seen === undefined) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return cycles;
}

const graph = importGraph(sourceFiles(SRC));

describe('import graph of src/', () => {
  it('reads the imports it checks (the parser sees known edges)', () => {
    expect(graph.get('server/app.ts')).toContain('errors.ts');
    expect(graph.get('lifecycle/model-version.ts')).toContain('cache/version-cache.ts');
    expect(
      findCycles(
        new Map([
          ['a.ts', ['b.ts']],
          ['b.ts', ['a.ts']],
        ]),
      ),
    ).toEqual([['a.ts', 'b.ts', 'a.ts']]);
  });

  it('has no import cycle between files', () => {
    expect(findCycles(graph).map((cycle) => cycle.join(' → '))).toEqual([]);
  });

  it('has no import of src/server from a folder below it', () => {
    const upward: string[] = [];
    for (const [file, targets] of graph) {
      if (ABOVE_SERVER.some((above) => file === above || file.startsWith(above))) continue;
      for (const target of targets) if (target.startsWith('server/')) upward.push(`${file} → ${target}`);
    }
    expect(upward).toEqual([]);
  });
});
