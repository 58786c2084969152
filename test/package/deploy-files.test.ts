import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

/**
 * deploy/: the Dockerfile and the Kubernetes manifests, checked for their structure. The image itself is not built by
 * the suite (no Docker daemon or Docker Hub here; BENCHMARKS.md/README say how it was tried), so these checks hold
 * what a build would otherwise show: the build stage packs with the dev dependencies, the runtime stage installs that
 * package with production dependencies only and runs it as an unprivileged user, and the pods are probed on health.
 */
const deploy = join(import.meta.dirname, '../../deploy');

interface Stage {
  from: string;
  name?: string;
  instructions: { keyword: string; args: string }[];
}

/** The Dockerfile's stages, each with its instructions (continuation lines joined, comments dropped). */
function dockerfileStages(text: string): Stage[] {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (keyword.toUpperCase() === 'FROM') {
      const [, from = '', name] = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args) ?? [];
      stages.push({ from, ...(name ? { name } : {}), instructions: [] });
    } else {
      stages.at(-1)?.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

const runs = (stage: Stage): string =>
  stage.instructions
    .filter((i) => i.keyword === 'RUN')
    .map((i) => i.args)
    .join('\n');

describe('deploy/Dockerfile', () => {
  const stages = dockerfileStages(readFileSync(join(deploy, 'Dockerfile'), 'utf8'));
  const build = stages[0]!;
  const runtime = stages.at(-1)!;

  it('has a build stage and a runtime stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(build.name).toBeDefined();
    expect(runtime.instructions.some((i) => i.keyword === 'COPY' && i.args.includes(`--from=${build.name}`))).toBe(
      true,
    );
  });

  it('the build stage installs every dependency (dev ones too) and packs the compiled package into a folder it made', () => {
    const commands = runs(build);
    expect(commands).toMatch(/npm ci\b/);
    expect(commands).not.toMatch(/--omit=dev|--production/);
    const pack = /npm pack\b[^&\n]*--pack-destination\s+(\S+)/.exec(commands);
    expect(pack, 'npm pack --pack-destination DIR').not.toBeNull();
    // npm pack fails with ENOENT when the destination folder does not exist.
    const destination = pack![1]!;
    expect(commands.slice(0, pack!.index)).toMatch(new RegExp(`mkdir -p ${destination.replace(/\//g, '\\/')}(\\s|$)`));
  });

  it('every stage that installs packages skips the CUDA download of onnxruntime-node', () => {
    for (const stage of stages) {
      const installs = runs(stage)
        .split('\n')
        .filter((command) => /npm (ci|install)\b/.test(command));
      if (installs.length === 0) continue;
      const env = stage.instructions.some(
        (i) => i.keyword === 'ENV' && i.args.includes('ONNXRUNTIME_NODE_INSTALL=skip'),
      );
      for (const command of installs)
        expect(env || command.includes('ONNXRUNTIME_NODE_INSTALL=skip'), command).toBe(true);
    }
  });

  it('the runtime stage installs the packed tarball with production dependencies only, without the CUDA download', () => {
    const commands = runs(runtime);
    expect(commands).toMatch(/npm install\b[^\n]*--omit=dev[^\n]*\.tgz/);
    expect(commands).toContain('ONNXRUNTIME_NODE_INSTALL=skip');
    expect(commands).not.toMatch(/\btsx\b|npm run build|\btsc\b/);
  });

  it('runs as an unprivileged user, the caliper command serving on all interfaces', () => {
    const users = runtime.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
    const entrypoint = runtime.instructions.find((i) => i.keyword === 'ENTRYPOINT');
    expect(JSON.parse(entrypoint!.args) as string[]).toEqual(
      expect.arrayContaining(['caliper', 'serve', '--host', '0.0.0.0']),
    );
    const healthcheck = runtime.instructions.find((i) => i.keyword === 'HEALTHCHECK');
    expect(healthcheck?.args).toContain('/v2/health/ready');
  });
});

interface Container {
  name: string;
  readinessProbe?: { httpGet?: { path: string } };
  livenessProbe?: { httpGet?: { path: string } };
  startupProbe?: { httpGet?: { path: string }; periodSeconds?: number; failureThreshold?: number };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  args?: string[];
}

interface Deployment {
  kind: string;
  metadata: { name: string };
  spec: { template: { spec: { terminationGracePeriodSeconds?: number; containers: Container[] } } };
}

describe('deploy/kubernetes manifests', () => {
  const folder = join(deploy, 'kubernetes');
  const deployments = readdirSync(folder)
    .filter((file) => /\.ya?ml$/.test(file))
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(folder, file), 'utf8')).map((document) => ({
        file,
        manifest: document.toJS() as Deployment,
      })),
    )
    .filter(({ manifest }) => manifest?.kind === 'Deployment');

  it('hold at least one Deployment', () => {
    expect(deployments.length).toBeGreaterThan(0);
  });

  it.each(deployments.map(({ file, manifest }) => [`${file} ${manifest.metadata.name}`, manifest] as const))(
    '%s probes /v2/health/ready for readiness and /v2/health/live for liveness, after a start-up allowance',
    (_, manifest) => {
      for (const container of manifest.spec.template.spec.containers) {
        expect(container.readinessProbe?.httpGet?.path, container.name).toBe('/v2/health/ready');
        expect(container.livenessProbe?.httpGet?.path, container.name).toBe('/v2/health/live');
        // The server listens only once its models are loaded: without a startup probe liveness kills slow loads.
        expect(container.startupProbe?.httpGet?.path, container.name).toBe('/v2/health/live');
        const allowanceS =
          (container.startupProbe?.periodSeconds ?? 10) * (container.startupProbe?.failureThreshold ?? 3);
        expect(allowanceS).toBeGreaterThanOrEqual(120);
      }
    },
  );

  it.each(deployments.map(({ file, manifest }) => [`${file} ${manifest.metadata.name}`, manifest] as const))(
    '%s gives the pod time for preStop and the drain before it is killed',
    (_, manifest) => {
      const pod = manifest.spec.template.spec;
      for (const container of pod.containers) {
        const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
        const sleepS = preStop[0] === 'sleep' ? Number(preStop[1]) : 0;
        const drainAt = container.args?.indexOf('--drain-timeout') ?? -1;
        const drainS = drainAt >= 0 ? Number(container.args![drainAt + 1]) : 30; // caliper serve's default
        expect(pod.terminationGracePeriodSeconds ?? 30, container.name).toBeGreaterThan(sleepS + drainS);
      }
    },
  );
});
