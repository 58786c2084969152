// The package as a user gets it, made the same way by the package test (test/package/packed-install.test.ts) and
// the start-up benchmark (scripts/startup-time.mjs --installed): `npm pack` this checkout (prepack builds dist/),
// then `npm install <tarball>` into an empty project in WORK, offline from npm's cache where it can be.
//
// Install scripts are skipped (--ignore-scripts): the CPU build of ONNX Runtime and DuckDB's binding ship inside
// their packages, so nothing needs one, and onnxruntime-node's would fetch from api.nuget.org (no network here).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The flags of `npm install <tarball>`, for both. */
export const PACKED_INSTALL_FLAGS = ['--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'];

/** The environment without the npm_* variables of an enclosing `npm run`/`npm test`, which would steer a nested npm. */
export const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));

/**
 * Packs `repo` into `work` and installs the tarball into `work/consumer` (a private ES-module project). Returns the
 * tarball, the project folder, the installed package's folder and the `npm warn` lines npm printed while installing.
 * Throws with npm's output when packing or installing fails.
 */
export function packAndInstall(repo, work) {
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
      cwd: repo,
      env: cleanEnv,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 << 20,
    }),
  );
  const tarball = join(work, packed[0].filename);
  const project = join(work, 'consumer');
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    `${JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2)}\n`,
  );
  const install = spawnSync('npm', ['install', tarball, ...PACKED_INSTALL_FLAGS], {
    cwd: project,
    env: cleanEnv,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (install.status !== 0) throw new Error(`npm install ${tarball} exited ${install.status}: ${install.stderr}`);
  const warnings = install.stderr.split('\n').filter((line) => /npm warn/i.test(line));
  return { tarball, project, installed: join(project, 'node_modules', 'caliper-serving'), warnings };
}
