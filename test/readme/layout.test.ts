import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** README "Layout" stays true to the tree: every folder under src/ is described, and every path it names exists. */

const ROOT = join(import.meta.dirname, '../..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Layout'), readme.indexOf('\n## ', readme.indexOf('## Layout') + 1));

describe('README Layout', () => {
  it('describes every folder under src/', () => {
    const folders = readdirSync(join(ROOT, 'src'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => `src/${entry.name}`);
    const described = new Set(section.match(/^src\/[a-z-]+|\s(src\/[a-z-]+)\s{2,}/gm)?.map((m) => m.trim()));
    expect(folders.filter((folder) => !described.has(folder))).toEqual([]);
  });

  it('names only source and test files that exist', () => {
    const named = [...section.matchAll(/`((?:src|test)\/[\w/.-]+\.ts)`/g)].map((m) => m[1]!);
    const inStageList = [...section.matchAll(/`(src\/[\w/.-]+\.ts)`/g)].length;
    expect(inStageList).toBeGreaterThan(0);
    expect(named.filter((path) => !existsSync(join(ROOT, path)))).toEqual([]);
  });
});
