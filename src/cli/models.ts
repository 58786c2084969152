import { InvalidArgumentError, type Command } from 'commander';
import { CaliperError } from '../errors.ts';
import type { ModelRegistry, RegisteredVersion, ReplicaRecord, TrafficSettings } from '../registry/model-registry.ts';
import { checkAlias, parseStage } from '../registry/model-stage.ts';
import type { TransferSummary } from '../registry/registry-transfer.ts';
import { formatSelector, parseSelector, type VersionSelector } from '../registry/model-uri.ts';

interface CommonOptions {
  registry?: string;
  artifacts?: string;
  json?: boolean;
}

const keyValue =
  (option: string) =>
  (value: string, previous: Record<string, string> = {}): Record<string, string> => {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`${option}: expected KEY=VALUE, got "${value}"`);
    return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
  };

const versionArgument = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`VERSION: expected a version number from 1, got "${value}"`);
  return n;
};

/** "TARGET:SHARE", e.g. "@challenger:0.1", "3:10%", "Staging:0.05". */
const targetShare =
  (option: string) =>
  (value: string): { target: string; share: number } => {
    const colon = value.lastIndexOf(':');
    const raw = colon > 0 ? value.slice(colon + 1) : '';
    const share = raw.endsWith('%') ? Number(raw.slice(0, -1)) / 100 : Number(raw);
    if (colon <= 0 || raw === '' || !Number.isFinite(share) || share < 0 || share > 1) {
      throw new InvalidArgumentError(
        `${option}: expected TARGET:SHARE with SHARE a fraction 0..1 or a percentage (e.g. @challenger:0.1 or 3:10%), got "${value}"`,
      );
    }
    return { target: value.slice(0, colon), share };
  };

/** The registry's module (SQLite, PostgreSQL and S3 clients, ONNX Runtime), loaded when a subcommand runs, not for --help. */
const registryModule = () => import('../registry/model-registry.ts');

async function withRegistry<T>(options: CommonOptions, work: (registry: ModelRegistry) => T | Promise<T>): Promise<T> {
  const { ModelRegistry } = await registryModule();
  const registry = await ModelRegistry.connect({ registry: options.registry, artifacts: options.artifacts });
  try {
    return await work(registry);
  } finally {
    await registry.close();
  }
}

function print(options: CommonOptions, value: unknown, text: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((r) => (r[column] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function describeVersion(v: RegisteredVersion): string {
  const io = (list: RegisteredVersion['signature']['inputs']) =>
    list.map((t) => `${t.name} ${t.type} [${t.shape.map((d) => (d === -1 ? '?' : d)).join(', ')}]`).join('; ');
  const lines = [
    `models:/${v.name}/${v.version}`,
    `  stage:       ${v.stage}${v.aliases.length ? `   aliases: ${v.aliases.join(', ')}` : ''}`,
    `  sha256:      ${v.sha256} (${v.size} bytes)`,
    `  source:      ${v.source}`,
    `  created:     ${v.createdAt} by ${v.createdBy}`,
    `  inputs:      ${io(v.signature.inputs)}`,
    `  outputs:     ${io(v.signature.outputs)}`,
  ];
  if (v.description) lines.push(`  description: ${v.description}`);
  if (Object.keys(v.tags).length)
    lines.push(
      `  tags:        ${Object.entries(v.tags)
        .map(([k, x]) => `${k}=${x}`)
        .join(', ')}`,
    );
  if (Object.keys(v.metrics).length)
    lines.push(
      `  metrics:     ${Object.entries(v.metrics)
        .map(([k, x]) => `${k}=${x}`)
        .join(', ')}`,
    );
  return lines.join('\n');
}

function describeTransfer(s: TransferSummary): string {
  return `copied ${s.models} model(s), ${s.versions} version(s), ${s.aliases} alias(es), ${s.historyRows} history row(s) and ${s.artifactsCopied} artifact(s) from ${s.from} to ${s.to}`;
}

function describeReplicas(replicas: ReplicaRecord[]): string {
  return table([
    ['HOST', 'PID', 'VERSION', 'SINCE', 'STATE', 'FOLLOWS', 'REASON'],
    ...replicas.map((r) => [
      r.host,
      String(r.pid),
      r.version === undefined ? '-' : String(r.version),
      r.since ?? '-',
      r.state,
      r.target,
      r.reason ?? '',
    ]),
  ]);
}

const withCommon = (command: Command): Command =>
  command
    .option(
      '--registry <dir|uri>',
      'registry folder or postgres://USER@HOST:PORT/DB (default $CALIPER_REGISTRY, $CALIPER_HOME or ~/.caliper)',
    )
    .option(
      '--artifacts <dir|uri>',
      'artifact store: a folder or s3://BUCKET/PREFIX[?endpoint=URL&path_style=true] (default $CALIPER_ARTIFACTS, else the registry folder)',
    )
    .option('--json', 'print JSON');

/** `caliper models register|list|show|promote|history|archive|delete|traffic` */
export function registerModelsCommand(program: Command): void {
  const models = program
    .command('models')
    .description('the model registry: versions, stages, aliases, history, traffic policies');

  withCommon(
    models
      .command('register')
      .description(
        'register an ONNX file and its model.yaml as the next version (checked: ONNX Runtime must load it and model.yaml must match it)',
      )
      .argument('<file>', 'the ONNX model file')
      .requiredOption('--name <name>', 'registered model name')
      .requiredOption('--config <model.yaml>', 'the model.yaml describing inputs, preprocess and postprocess')
      .option('--description <text>', 'what this version is')
      .option('--tag <key=value>', 'a tag (repeatable)', keyValue('--tag'))
      .option('--metric <key=value>', 'a numeric metric, e.g. auc=0.93 (repeatable)', keyValue('--metric'))
      .option('--stage <stage>', 'move the new version to this stage right away')
      .option('--archive-existing', 'with --stage: move the versions already in that stage to Archived')
      .option('--alias <alias>', 'point this alias at the new version'),
  ).action(
    async (
      file: string,
      o: CommonOptions & {
        name: string;
        config: string;
        description?: string;
        tag?: Record<string, string>;
        metric?: Record<string, string>;
        stage?: string;
        archiveExisting?: boolean;
        alias?: string;
      },
    ) => {
      const metrics: Record<string, number> = {};
      for (const [k, v] of Object.entries(o.metric ?? {})) {
        const n = Number(v);
        if (!Number.isFinite(n))
          throw new CaliperError('CALIPER_INVALID_INPUT', `--metric ${k}: expected a number, got "${v}"`);
        metrics[k] = n;
      }
      const stage = o.stage === undefined ? undefined : parseStage(o.stage, '--stage');
      if (o.alias !== undefined) checkAlias(o.alias, '--alias');
      const record = await withRegistry(o, async (registry) => {
        let created = await registry.register({
          file,
          configFile: o.config,
          name: o.name,
          description: o.description,
          tags: o.tag ?? {},
          metrics,
        });
        if (stage)
          created = await registry.setStage(created.name, created.version, stage, {
            archiveExisting: o.archiveExisting ?? false,
          });
        if (o.alias) created = await registry.setAlias(created.name, o.alias, created.version);
        return created;
      });
      print(
        o,
        record,
        () =>
          `registered models:/${record.name}/${record.version} (sha256 ${record.sha256.slice(0, 12)}…, stage ${record.stage})`,
      );
    },
  );

  withCommon(models.command('list').description('registered models with their stages and aliases')).action(
    async (o: CommonOptions) => {
      const list = await withRegistry(o, (registry) => registry.listModels());
      print(o, list, () =>
        list.length === 0
          ? 'no registered models'
          : table([
              ['NAME', 'VERSIONS', 'LATEST', 'STAGES', 'ALIASES'],
              ...list.map((m) => [
                m.name,
                String(m.versions.length),
                String(m.latestVersion ?? '-'),
                Object.entries(m.stages)
                  .map(([s, vs]) => `${s}:${vs.join(',')}`)
                  .join(' ') || '-',
                Object.entries(m.aliases)
                  .map(([a, v]) => `${a}=${v}`)
                  .join(' ') || '-',
              ]),
            ]),
      );
    },
  );

  withCommon(
    models
      .command('show')
      .description('a model and its versions, or one version in detail')
      .argument('<name>', 'model name')
      .argument('[version]', 'version number', versionArgument),
  ).action(async (name: string, version: number | undefined, o: CommonOptions) => {
    await withRegistry(o, async (registry) => {
      if (version !== undefined) {
        const v = await registry.version(name, version);
        print(o, v, () => describeVersion(v));
        return;
      }
      const { describeTraffic } = await registryModule();
      const model = await registry.model(name);
      const versions = await registry.versions(name);
      const traffic = await registry.traffic(name);
      const replicas = await registry.replicas(name);
      const trafficJson = {
        ...(traffic.canary
          ? { canary: { target: formatSelector(traffic.canary.target), weight: traffic.canary.weight } }
          : {}),
        ...(traffic.shadow
          ? { shadow: { target: formatSelector(traffic.shadow.target), fraction: traffic.shadow.fraction } }
          : {}),
      };
      print(o, { ...model, traffic: trafficJson, versionDetails: versions, servedBy: replicas }, () =>
        [
          `${model.name}${model.description ? ` — ${model.description}` : ''}`,
          `traffic: ${describeTraffic(traffic)}`,
          table([
            ['VERSION', 'STAGE', 'ALIASES', 'SHA256', 'CREATED', 'DESCRIPTION'],
            ...versions.map((v) => [
              String(v.version),
              v.stage,
              v.aliases.join(',') || '-',
              v.sha256.slice(0, 12),
              v.createdAt,
              v.description ?? '',
            ]),
          ]),
          ...(replicas.length
            ? ['served by:', describeReplicas(replicas)]
            : ['served by: no server follows this model']),
        ].join('\n'),
      );
    });
  });

  withCommon(
    models
      .command('promote')
      .description('move a version to a stage, or point an alias at it; serving registries follow live')
      .argument('<name>', 'model name')
      .argument('<version>', 'version number', versionArgument)
      .option('--stage <stage>', 'None | Staging | Production | Archived')
      .option('--alias <alias>', 'alias to point at the version, e.g. champion')
      .option('--archive-existing', 'move the versions already in that stage to Archived'),
  ).action(
    async (
      name: string,
      version: number,
      o: CommonOptions & { stage?: string; alias?: string; archiveExisting?: boolean },
    ) => {
      if ((o.stage === undefined) === (o.alias === undefined))
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          'promote: expected exactly one of --stage STAGE or --alias ALIAS',
        );
      const record = await withRegistry(o, (registry) =>
        o.stage !== undefined
          ? registry.setStage(name, version, parseStage(o.stage, '--stage'), {
              archiveExisting: o.archiveExisting ?? false,
            })
          : registry.setAlias(name, checkAlias(o.alias!, '--alias'), version),
      );
      print(o, record, () =>
        o.stage !== undefined
          ? `models:/${name}/${version} is now in stage ${record.stage}`
          : `models:/${name}@${o.alias} now points at version ${version}`,
      );
    },
  );

  withCommon(
    models
      .command('describe')
      .description("set a model's description, or a version's with --version (an empty text clears it)")
      .argument('<name>', 'model name')
      .argument('<text>', 'the description')
      .option('--version <version>', 'describe this version instead of the model', versionArgument),
  ).action(async (name: string, text: string, o: CommonOptions & { version?: number }) => {
    const record = await withRegistry(o, (registry) => registry.describe(name, text, o.version));
    const what = o.version === undefined ? `models:/${name}` : `models:/${name}/${o.version}`;
    print(o, record, () => (record.description ? `${what}: ${record.description}` : `${what}: description cleared`));
  });

  withCommon(
    models
      .command('history')
      .description('every stage transition, alias move, registration and deletion, oldest first')
      .argument('<name>', 'model name'),
  ).action(async (name: string, o: CommonOptions) => {
    const history = await withRegistry(o, (registry) => registry.history(name));
    print(o, history, () =>
      table([
        ['WHEN', 'VERSION', 'EVENT', 'FROM', 'TO', 'BY'],
        ...history.map((h) => [
          h.at,
          h.version === undefined ? '-' : String(h.version),
          h.event,
          h.from ?? '-',
          h.to ?? '-',
          h.actor,
        ]),
      ]),
    );
  });

  withCommon(
    models
      .command('archive')
      .description('move a version to stage Archived')
      .argument('<name>', 'model name')
      .argument('<version>', 'version number', versionArgument),
  ).action(async (name: string, version: number, o: CommonOptions) => {
    const record = await withRegistry(o, (registry) => registry.archive(name, version));
    print(o, record, () => `models:/${name}/${version} archived`);
  });

  withCommon(
    models
      .command('delete')
      .description('delete a version, or a whole model with every version (its history is kept)')
      .argument('<name>', 'model name')
      .argument('[version]', 'version number', versionArgument)
      .option('--force', 'also delete versions in Staging/Production or under an alias'),
  ).action(async (name: string, version: number | undefined, o: CommonOptions & { force?: boolean }) => {
    await withRegistry(o, (registry) =>
      version === undefined
        ? registry.deleteModel(name, { force: o.force ?? false })
        : registry.deleteVersion(name, version, { force: o.force ?? false }),
    );
    const what = version === undefined ? `model ${name}` : `models:/${name}/${version}`;
    print(o, { deleted: what }, () => `deleted ${what}`);
  });

  withCommon(
    models
      .command('export')
      .description(
        'copy the whole registry (versions, stages, aliases, tags, metrics, traffic, history, artifacts) into another one',
      )
      .argument('<destination>', 'a folder (a new SQLite registry) or postgres://USER@HOST:PORT/DB')
      .option(
        '--to-artifacts <dir|uri>',
        "the destination's artifact store: a folder or s3://BUCKET/PREFIX (default: the destination folder's, or $CALIPER_ARTIFACTS)",
      ),
  ).action(async (destination: string, o: CommonOptions & { toArtifacts?: string }) => {
    const summary = await withRegistry(o, async (source) => {
      const [{ ModelRegistry }, { transferRegistry }] = await Promise.all([
        registryModule(),
        import('../registry/registry-transfer.ts'),
      ]);
      const target = await ModelRegistry.connect({
        registry: destination,
        ...(o.toArtifacts ? { artifacts: o.toArtifacts } : {}),
      });
      try {
        if (target.location === source.location)
          throw new CaliperError(
            'CALIPER_INVALID_INPUT',
            `<destination>: ${destination} is the registry being exported`,
          );
        return await transferRegistry(source, target);
      } finally {
        await target.close();
      }
    });
    print(o, summary, () => describeTransfer(summary));
  });

  withCommon(
    models
      .command('import')
      .description(
        'copy a whole registry (another folder or PostgreSQL database) into this one; none of its models may exist here',
      )
      .argument('<source>', 'a registry folder or postgres://USER@HOST:PORT/DB')
      .option(
        '--from-artifacts <dir|uri>',
        "the source's artifact store: a folder or s3://BUCKET/PREFIX (default: the source folder's, or $CALIPER_ARTIFACTS)",
      ),
  ).action(async (sourceLocation: string, o: CommonOptions & { fromArtifacts?: string }) => {
    const summary = await withRegistry(o, async (target) => {
      const [{ ModelRegistry }, { transferRegistry }] = await Promise.all([
        registryModule(),
        import('../registry/registry-transfer.ts'),
      ]);
      const source = await ModelRegistry.connect({
        registry: sourceLocation,
        ...(o.fromArtifacts ? { artifacts: o.fromArtifacts } : {}),
      });
      try {
        if (target.location === source.location)
          throw new CaliperError(
            'CALIPER_INVALID_INPUT',
            `<source>: ${sourceLocation} is the registry being imported into`,
          );
        return await transferRegistry(source, target);
      } finally {
        await source.close();
      }
    });
    print(o, summary, () => describeTransfer(summary));
  });

  withCommon(
    models
      .command('import-mlflow')
      .description(
        'register an MLflow model saved with the ONNX flavour (its MLmodel file); its signature becomes the request schema unless model.yaml says otherwise',
      )
      .argument('<path>', 'the MLflow model folder (holding MLmodel and the .onnx file)')
      .requiredOption('--name <name>', 'registered model name')
      .option(
        '--config <model.yaml>',
        'model.yaml whose fields win over the signature (default: model.yaml in the folder, if any)',
      )
      .option('--description <text>', 'what this version is')
      .option('--tag <key=value>', 'a tag (repeatable)', keyValue('--tag'))
      .option('--stage <stage>', 'move the new version to this stage right away')
      .option('--archive-existing', 'with --stage: move the versions already in that stage to Archived'),
  ).action(
    async (
      path: string,
      o: CommonOptions & {
        name: string;
        config?: string;
        description?: string;
        tag?: Record<string, string>;
        stage?: string;
        archiveExisting?: boolean;
      },
    ) => {
      const stage = o.stage === undefined ? undefined : parseStage(o.stage, '--stage');
      const record = await withRegistry(o, async (registry) => {
        const { importMlflowModel } = await import('../registry/mlflow-model.ts');
        const created = await importMlflowModel(registry, {
          path,
          name: o.name,
          ...(o.config !== undefined ? { configFile: o.config } : {}),
          ...(o.description !== undefined ? { description: o.description } : {}),
          tags: o.tag ?? {},
        });
        return stage
          ? registry.setStage(created.name, created.version, stage, { archiveExisting: o.archiveExisting ?? false })
          : created;
      });
      print(
        o,
        record,
        () => `registered models:/${record.name}/${record.version} from MLflow model ${path} (stage ${record.stage})`,
      );
    },
  );

  withCommon(
    models
      .command('traffic')
      .description('canary and shadow traffic for a model (servers following the registry apply it live)')
      .argument('<name>', 'model name')
      .option(
        '--canary <target:share>',
        'send SHARE of requests to TARGET (a version, stage, @alias or latest), e.g. @challenger:10%',
        targetShare('--canary'),
      )
      .option(
        '--shadow <target:share>',
        'mirror SHARE of requests to TARGET; its answers are compared, never returned',
        targetShare('--shadow'),
      )
      .option('--clear', 'end canary and shadow traffic')
      .option('--clear-canary', 'end canary traffic, keep shadow traffic')
      .option('--clear-shadow', 'end shadow traffic, keep canary traffic'),
  ).action(
    async (
      name: string,
      o: CommonOptions & {
        canary?: { target: string; share: number };
        shadow?: { target: string; share: number };
        clear?: boolean;
        clearCanary?: boolean;
        clearShadow?: boolean;
      },
    ) => {
      const settings = await withRegistry(o, async (registry) => {
        const current = await registry.traffic(name);
        if (!o.clear && !o.clearCanary && !o.clearShadow && !o.canary && !o.shadow) return current;
        // Canary and shadow are independent: changing one keeps the other.
        const next: TrafficSettings = o.clear ? {} : { ...current };
        if (o.clearCanary) delete next.canary;
        if (o.clearShadow) delete next.shadow;
        // A target must name a version that exists now, or the split would silently send everything to the default.
        const checked = async (option: string, target: string): Promise<VersionSelector> => {
          const selector = parseSelector(name, target);
          try {
            await registry.resolve(name, selector);
          } catch (error) {
            throw new CaliperError('CALIPER_VERSION_NOT_FOUND', `${option} ${target}: ${(error as Error).message}`);
          }
          return selector;
        };
        if (o.canary) next.canary = { target: await checked('--canary', o.canary.target), weight: o.canary.share };
        if (o.shadow) next.shadow = { target: await checked('--shadow', o.shadow.target), fraction: o.shadow.share };
        return registry.setTraffic(name, next);
      });
      const json = {
        ...(settings.canary
          ? { canary: { target: formatSelector(settings.canary.target), weight: settings.canary.weight } }
          : {}),
        ...(settings.shadow
          ? { shadow: { target: formatSelector(settings.shadow.target), fraction: settings.shadow.fraction } }
          : {}),
      };
      const { describeTraffic } = await registryModule();
      print(o, json, () => `${name}: ${describeTraffic(settings)}`);
    },
  );
}
