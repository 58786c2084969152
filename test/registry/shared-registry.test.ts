import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerModelsCommand } from '../../src/cli/models.ts';
import { ModelRegistry, type ReplicaRecord } from '../../src/registry/model-registry.ts';
import { freePort } from '../../src/system/free-port.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { startPrivateS3, useS3rverCredentials, type PrivateS3 } from '../support/private-s3.ts';
import { createTestHosts, type TestHost, type TestHosts } from '../support/test-hosts.ts';
import { FRAUD_ONNX, FRAUD_YAML, fraudVariant, RegistryFixture } from './registry-fixture.ts';

const BODY = JSON.stringify({ transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 30 });
/** The bound on swap time after a promote (LISTEN/NOTIFY makes it far shorter; polling every 250 ms is the fallback). */
const SWAP_BOUND_MS = 5_000;

interface Replica {
  host: TestHost;
  port: number;
  url: string;
  cache: string;
  child: ChildProcess;
  log: string[];
}

/**
 * Two servers on two test hosts follow one PostgreSQL registry and one S3 bucket (both served from this
 * namespace): promotes reach both under load, concurrent writers from both hosts lose nothing, and a store
 * outage leaves loaded versions answering.
 */
describe('a registry shared by two hosts (PostgreSQL + S3)', () => {
  const fixture = new RegistryFixture();
  let hosts: TestHosts;
  let postgres: PrivatePostgres;
  let s3: PrivateS3;
  let database: string;
  let admin: ModelRegistry;
  const replicas: Replica[] = [];
  const registryUri = (host?: TestHost): string =>
    `postgres://caliper@${host?.servicesAddress ?? '127.0.0.1'}:${postgres.port}/${database}`;
  const artifactsUri = (host?: TestHost): string =>
    `s3://models/team?endpoint=${encodeURIComponent(`http://${host?.servicesAddress ?? '127.0.0.1'}:${s3.port}`)}&path_style=true`;
  const hostEnv = (name: string): NodeJS.ProcessEnv => ({
    ...process.env,
    CALIPER_HOME: join(fixture.dir, `${name}-home`),
    CALIPER_ARTIFACT_CACHE: join(fixture.dir, `${name}-cache`),
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
  });

  const startReplica = async (host: TestHost, port: number): Promise<Replica> => {
    const cache = join(fixture.dir, `${host.name}-cache`);
    const [command, args] = host.command(process.execPath, [
      'bin/caliper.js',
      'serve',
      'models:/fraud/Production',
      '--registry',
      registryUri(host),
      '--artifacts',
      artifactsUri(host),
      '--artifact-cache',
      cache,
      '--host',
      host.address,
      '--port',
      String(port),
    ]);
    const child = spawn(command, args, { env: hostEnv(host.name), stdio: ['ignore', 'pipe', 'pipe'] });
    const log: string[] = [];
    child.stdout!.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    const url = `http://${host.address}:${port}`;
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`caliper serve on ${host.name} exited ${child.exitCode}: ${log.join('').slice(-2000)}`);
      const ready = await fetch(`${url}/v2/models/fraud/ready`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline)
        throw new Error(`caliper serve on ${host.name} not ready: ${log.join('').slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { host, port, url, cache, child, log };
  };
  const stopReplica = async (replica: Replica): Promise<void> => {
    if (replica.child.exitCode !== null) return;
    const exited = once(replica.child, 'exit');
    replica.child.kill('SIGTERM');
    await exited;
  };
  const predict = async (replica: Replica): Promise<{ status: number; version?: string }> => {
    const response = await fetch(`${replica.url}/models/fraud/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: BODY,
    });
    const body = (await response.json()) as { model_version?: string };
    return { status: response.status, ...(body.model_version ? { version: body.model_version } : {}) };
  };
  const servedBy = async (): Promise<ReplicaRecord[]> => admin.replicas('fraud');
  const showModel = async (): Promise<string> => {
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
      await program.parseAsync([
        'node',
        'caliper',
        'models',
        'show',
        'fraud',
        '--registry',
        registryUri(),
        '--artifacts',
        artifactsUri(),
      ]);
    } finally {
      process.stdout.write = write;
    }
    return stdout;
  };
  const waitFor = async (check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    useS3rverCredentials();
    hosts = createTestHosts('reg');
    if (hosts.why) console.warn(`shared registry test: two processes on 127.0.0.1 instead of two hosts: ${hosts.why}`);
    [postgres, s3] = await Promise.all([
      startPrivatePostgres({ listen: hosts.serviceAddresses }),
      startPrivateS3(['models'], hosts.serviceAddresses),
    ]);
    database = new URL(await postgres.createDatabase('shared')).pathname.slice(1);
    admin = await ModelRegistry.connect({
      registry: registryUri(),
      artifacts: artifactsUri(),
      artifactCache: join(fixture.dir, 'admin-cache'),
    });
    await admin.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await admin.register({ file: fraudVariant(fixture, 'two'), configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await admin.setStage('fraud', 1, 'Production', { actor: 'test' });
    const ports = [await freePort(), await freePort()];
    replicas.push(...(await Promise.all(hosts.hosts.map((host, i) => startReplica(host, ports[i]!)))));
  }, 240_000);

  afterAll(async () => {
    await Promise.all(replicas.map(stopReplica));
    await admin?.close();
    await Promise.all([postgres?.dispose(), s3?.dispose()]);
    hosts?.dispose();
    fixture.remove();
  });

  it('records which server serves which version: host, pid, since', async () => {
    await waitFor(
      async () => (await servedBy()).filter((r) => r.version === 1).length === 2,
      'both servers to record version 1',
    );
    const records = await servedBy();
    // ip netns exec, unshare and sh each exec the next program, so the child's pid is the server's.
    expect(records.map((r) => r.pid).sort()).toEqual(replicas.map((r) => r.child.pid!).sort());
    expect(records).toEqual(
      expect.arrayContaining(
        replicas.map(() =>
          expect.objectContaining({
            state: 'ready',
            version: 1,
            target: 'models:/fraud/Production',
            since: expect.any(String),
          }),
        ),
      ),
    );
    if (hosts.kind === 'netns') expect(records.map((r) => r.host).sort()).toEqual(['reg-a', 'reg-b']);
    // `caliper models show` lists them.
    const shown = await showModel();
    expect(shown).toMatch(/served by:\n\s*HOST\s+PID\s+VERSION\s+SINCE\s+STATE/);
    for (const record of records)
      expect(shown).toMatch(
        new RegExp(`${record.host}\\s+${record.pid}\\s+1\\s+\\S+\\s+ready\\s+models:/fraud/Production`),
      );
  });

  it('a promote under load on both servers: 0 non-2xx, both answer with the new version within the bound', async () => {
    const seen = replicas.map(() => ({ ok: 0, failed: 0, firstNew: Number.POSITIVE_INFINITY }));
    let stop = false;
    let promotedAt = 0;
    const loops = replicas.flatMap((replica, i) =>
      Array.from({ length: 4 }, async () => {
        while (!stop) {
          try {
            const answer = await predict(replica);
            if (answer.status !== 200) seen[i]!.failed++;
            else seen[i]!.ok++;
            if (answer.version === '2' && promotedAt > 0) seen[i]!.firstNew = Math.min(seen[i]!.firstNew, Date.now());
          } catch {
            seen[i]!.failed++;
          }
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 1_000));
    await admin.setStage('fraud', 2, 'Production', { archiveExisting: true, actor: 'test' });
    promotedAt = Date.now();
    const deadline = promotedAt + SWAP_BOUND_MS + 5_000;
    while (seen.some((s) => s.firstNew === Number.POSITIVE_INFINITY) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await Promise.all(loops);
    const swapMs = seen.map((s) => s.firstNew - promotedAt);
    console.log(
      `shared registry (${hosts.kind}): swap after promote ${swapMs.map((ms) => `${ms} ms`).join(', ')}; requests ${seen.map((s) => s.ok).join(', ')}`,
    );
    expect(seen.map((s) => s.failed)).toEqual([0, 0]);
    expect(seen.every((s) => s.ok > 20)).toBe(true);
    for (const ms of swapMs) expect(ms).toBeLessThan(SWAP_BOUND_MS);
    await waitFor(
      async () => (await servedBy()).filter((r) => r.version === 2).length === 2,
      'both servers to record version 2',
    );
  });

  it('a version that cannot load on a replica: it keeps the old one and records why', async () => {
    const broken = await admin.register({
      file: fraudVariant(fixture, 'three'),
      configFile: FRAUD_YAML,
      name: 'fraud',
      actor: 'test',
    });
    // The bucket's copy no longer matches the registered sha256 (the registering machine's cache still does).
    const client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' });
    await client.send(
      new PutObjectCommand({
        Bucket: 'models',
        Key: `team/sha256/${broken.sha256.slice(0, 2)}/${broken.sha256}`,
        Body: 'corrupted in the bucket',
      }),
    );
    client.destroy();
    await admin.setStage('fraud', broken.version, 'Production', { archiveExisting: true, actor: 'test' });
    await waitFor(
      async () => (await servedBy()).filter((r) => r.failedVersion === broken.version).length === 2,
      'both servers to record the failed load',
    );
    for (const record of await servedBy()) {
      expect(record).toMatchObject({ state: 'ready', version: 2, failedVersion: broken.version });
      expect(record.reason).toMatch(/version 3 failed to load: .*is corrupt.*; version 2 keeps serving/);
    }
    for (const replica of replicas) expect(await predict(replica)).toEqual({ status: 200, version: '2' });
    await admin.setStage('fraud', 2, 'Production', { archiveExisting: true, actor: 'test' });
    await admin.setStage('fraud', broken.version, 'Archived', { actor: 'test' });
    await waitFor(async () => (await servedBy()).every((r) => r.failedVersion === undefined), 'the failure to clear');
  });

  it('2 × 20 concurrent register/promote commands from both hosts lose nothing and leave one version per stage', async () => {
    const before = await admin.model('fraud');
    const commandsFor = (h: number): string[][] =>
      Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0
          ? [
              'register',
              FRAUD_ONNX,
              '--name',
              'fraud',
              '--config',
              FRAUD_YAML,
              '--stage',
              'Staging',
              '--archive-existing',
              '--tag',
              `host=${h}`,
            ]
          : ['promote', 'fraud', String(1 + ((i + h) % 2)), '--stage', 'Production', '--archive-existing'],
      );
    const runs = hosts.hosts.map(async (host, h) => {
      const commands = commandsFor(h).map((args) => [
        ...args,
        '--registry',
        registryUri(host),
        '--artifacts',
        artifactsUri(host),
      ]);
      const [command, args] = host.command(process.execPath, [
        '--import',
        'tsx',
        'test/support/concurrent-cli.ts',
        JSON.stringify(commands),
      ]);
      const child = spawn(command, args, { env: hostEnv(`${host.name}-cli`), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const [code] = (await once(child, 'exit')) as [number];
      if (code !== 0) throw new Error(`commands on ${host.name} exited ${code}: ${stderr.slice(-2000)}`);
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as { args: string[]; ok: boolean; error?: string }[];
    });
    const results = (await Promise.all(runs)).flat();
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(results).toHaveLength(40);

    const after = await admin.model('fraud');
    const registered = before.versions.length + 20;
    expect(after.versions).toEqual(Array.from({ length: registered }, (_, i) => i + 1));
    expect(after.stages.Production).toHaveLength(1);
    expect(after.stages.Staging).toHaveLength(1);
    expect([1, 2]).toContain(after.stages.Production![0]);
    const versions = await admin.versions('fraud');
    expect(versions.filter((v) => v.tags.host === '0')).toHaveLength(10);
    expect(versions.filter((v) => v.tags.host === '1')).toHaveLength(10);
    const history = await admin.history('fraud');
    expect(history.filter((h) => h.event === 'registered')).toHaveLength(registered);
    // Both servers end on the Production version the last commit left.
    await waitFor(
      async () => (await servedBy()).filter((r) => r.version === after.stages.Production![0]).length === 2,
      'both servers to follow the final Production version',
    );
  });

  it('the bucket going away: loaded versions keep answering, and a restarted server loads from its verified cache', async () => {
    const production = (await admin.model('fraud')).stages.Production![0]!;
    await s3.stop();
    for (const replica of replicas) {
      for (let i = 0; i < 20; i++) expect(await predict(replica)).toEqual({ status: 200, version: String(production) });
    }
    const first = replicas[0]!;
    await stopReplica(first);
    replicas[0] = await startReplica(first.host, first.port);
    expect(await predict(replicas[0]!)).toEqual({ status: 200, version: String(production) });
  });
});
