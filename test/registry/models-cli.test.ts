import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { registerModelsCommand } from '../../src/cli/models.ts';
import { startServing } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';
import { FRAUD_ONNX, FRAUD_YAML, RegistryFixture } from './registry-fixture.ts';

const exec = promisify(execFile);
const fixture = new RegistryFixture();

/** Runs `caliper models ...` in this process (commander program, stdout captured): fast enough to cover every command. */
async function caliper(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command()
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  registerModelsCommand(program);
  let stdout = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => {
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'caliper', 'models', ...args, '--registry', fixture.home]);
    return { code: 0, stdout, stderr: '' };
  } catch (error) {
    return { code: 1, stdout, stderr: (error as Error).message };
  } finally {
    process.stdout.write = write;
  }
}

/** The real CLI in its own process. */
async function caliperProcess(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec('node', ['bin/caliper.js', 'models', ...args, '--registry', fixture.home], {
      env: { ...process.env, CALIPER_HOME: '' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}
const json = async (...args: string[]): Promise<unknown> => {
  const result = await caliper(...args, '--json');
  if (result.code !== 0) throw new Error(`caliper models ${args.join(' ')} failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
};
const processJson = async (...args: string[]): Promise<unknown> => {
  const result = await caliperProcess(...args, '--json');
  if (result.code !== 0) throw new Error(`caliper models ${args.join(' ')} failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
};

afterAll(() => fixture.remove());

describe('caliper models', () => {
  it('registers from two processes at once while a server follows the registry, with distinct version numbers', async () => {
    const first = await json(
      'register',
      FRAUD_ONNX,
      '--name',
      'fraud',
      '--config',
      FRAUD_YAML,
      '--stage',
      'Production',
      '--tag',
      'team=risk',
      '--metric',
      'auc=0.9',
    );
    expect(first).toMatchObject({
      name: 'fraud',
      version: 1,
      stage: 'Production',
      tags: { team: 'risk' },
      metrics: { auc: 0.9 },
    });
    const server = await startServing({
      paths: [],
      registry: fixture.home,
      registryPollMs: 25,
      port: 0,
      logger: quietLogger(),
    });
    try {
      expect(server.repository.get('fraud').defaultVersion).toBe(1);
      const results = (await Promise.all([
        processJson('register', FRAUD_ONNX, '--name', 'fraud', '--config', FRAUD_YAML, '--alias', 'champion'),
        processJson('register', FRAUD_ONNX, '--name', 'fraud', '--config', FRAUD_YAML, '--description', 'parallel'),
      ])) as { version: number; aliases: string[] }[];
      expect(results.map((r) => r.version).sort()).toEqual([2, 3]);
      const champion = results.find((r) => r.aliases.includes('champion'))!.version;
      await json('promote', 'fraud', String(champion), '--stage', 'Production', '--archive-existing');
      const deadline = Date.now() + 10_000;
      while (server.repository.get('fraud').defaultVersion !== champion && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 25));
      expect(server.repository.get('fraud').defaultVersion).toBe(champion);
    } finally {
      await server.close();
    }
  });

  it('lists, shows, promotes to an alias, archives, sets traffic, shows history and deletes, each with --json', async () => {
    expect(await json('list')).toEqual([expect.objectContaining({ name: 'fraud', versions: [1, 2, 3] })]);
    expect(await json('show', 'fraud')).toMatchObject({
      name: 'fraud',
      versionDetails: [{ version: 1 }, { version: 2 }, { version: 3 }],
    });
    expect(await json('show', 'fraud', '1')).toMatchObject({
      version: 1,
      stage: 'Archived',
      signature: { inputs: [{ name: 'features' }] },
    });
    expect(await json('promote', 'fraud', '1', '--alias', 'challenger')).toMatchObject({
      version: 1,
      aliases: ['challenger'],
    });
    expect(await json('archive', 'fraud', '1')).toMatchObject({ version: 1, stage: 'Archived' });
    expect(await json('traffic', 'fraud', '--canary', '@challenger:10%', '--shadow', '1:0.5')).toEqual({
      canary: { target: '@challenger', weight: 0.1 },
      shadow: { target: '1', fraction: 0.5 },
    });
    // Canary and shadow are independent, and a target must exist.
    expect(await json('traffic', 'fraud', '--shadow', '2:5%')).toEqual({
      canary: { target: '@challenger', weight: 0.1 },
      shadow: { target: '2', fraction: 0.05 },
    });
    expect(await json('traffic', 'fraud', '--canary', '3:20%')).toEqual({
      canary: { target: '3', weight: 0.2 },
      shadow: { target: '2', fraction: 0.05 },
    });
    const missing = await caliper('traffic', 'fraud', '--canary', '9:10%');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/--canary 9: model "fraud" has no version 9/);
    expect((await caliper('traffic', 'fraud', '--shadow', '@nobody:10%')).stderr).toMatch(
      /--shadow @nobody: .*no alias "nobody"/,
    );
    expect(await json('traffic', 'fraud')).toEqual({
      canary: { target: '3', weight: 0.2 },
      shadow: { target: '2', fraction: 0.05 },
    });
    expect(await json('traffic', 'fraud', '--clear-canary')).toEqual({ shadow: { target: '2', fraction: 0.05 } });
    expect(await json('traffic', 'fraud', '--canary', '@challenger:10%', '--shadow', '1:0.5')).toEqual({
      canary: { target: '@challenger', weight: 0.1 },
      shadow: { target: '1', fraction: 0.5 },
    });
    expect(await json('describe', 'fraud', 'Card-fraud scorer')).toMatchObject({
      name: 'fraud',
      description: 'Card-fraud scorer',
    });
    expect(await json('describe', 'fraud', 'the November retrain', '--version', '3')).toMatchObject({
      version: 3,
      description: 'the November retrain',
    });
    const shown = await caliper('show', 'fraud');
    expect(shown.stdout).toMatch(/^fraud — Card-fraud scorer\n/);
    expect(shown.stdout).toMatch(/\n3\s.*the November retrain\n/);
    expect((await caliper('describe', 'fraud', 'x', '--version', '9')).stderr).toMatch(
      /model "fraud" has no version 9/,
    );
    const history = (await json('history', 'fraud')) as { event: string }[];
    expect(history.map((h) => h.event)).toEqual(
      expect.arrayContaining(['registered', 'stage', 'alias_set', 'traffic']),
    );
    expect(await json('delete', 'fraud', '1', '--force')).toEqual({ deleted: 'models:/fraud/1' });
    const text = await caliper('list');
    expect(text.stdout).toMatch(/NAME\s+VERSIONS\s+LATEST\s+STAGES\s+ALIASES\nfraud\s+2\s+3/);
  });

  it('fails with a one-line reason and a non-zero exit on bad input', async () => {
    const cases: [string[], RegExp][] = [
      [['show', 'ghost'], /model "ghost" is not registered/],
      [['show', 'fraud', '9'], /model "fraud" has no version 9/],
      [
        ['promote', 'fraud', '2', '--stage', 'Live'],
        /--stage: expected one of None, Staging, Production, Archived, got "Live"/,
      ],
      [['promote', 'fraud', '2'], /expected exactly one of --stage STAGE or --alias ALIAS/],
      [['register', fixture.truncatedModel(), '--name', 'fraud', '--config', FRAUD_YAML], /not a loadable ONNX model/],
      [
        ['register', FRAUD_ONNX, '--name', 'fraud', '--config', fixture.mismatchedConfig()],
        /model.yaml builds 11 columns/,
      ],
      [['traffic', 'fraud', '--canary', '@challenger'], /--canary: expected TARGET:SHARE/],
    ];
    for (const [args, message] of cases) {
      const result = await caliper(...args);
      expect(result.code, args.join(' ')).not.toBe(0);
      expect(
        result.stderr
          .trim()
          .split('\n')
          .filter((l) => !l.startsWith('npm warn'))[0],
      ).toMatch(message);
    }
    const real = await caliperProcess('promote', 'fraud', '2', '--stage', 'Live');
    expect(real.code).toBe(1);
    expect(real.stderr.trim()).toMatch(
      /^caliper: --stage: expected one of None, Staging, Production, Archived, got "Live"$/m,
    );
    expect((await json('show', 'fraud')) as { versions: number[] }).toMatchObject({ versions: [2, 3] });
  });
});
