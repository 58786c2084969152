import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CaliperError } from '../errors.ts';
import { parsePositiveNumberOption } from './options.ts';

interface DoctorCommandOptions {
  model: string;
  p99Ms: number;
  rate?: number;
  concurrency?: number;
  url?: string;
  data?: string;
  eval?: string;
  label?: string;
  maxDrop: number;
  budgetMinutes?: number;
  margin?: number;
  featureRedis?: string;
  remedies?: string[];
  apply?: boolean;
  register?: string;
  registry?: string;
  report?: string;
  out?: string;
  duration: number;
  json?: boolean;
}

function nonNegative(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new CaliperError('CALIPER_INVALID_INPUT', `--max-drop: expected a number >= 0, got "${value}"`);
  return n;
}

function positiveInteger(option: string): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1)
      throw new CaliperError('CALIPER_INVALID_INPUT', `${option}: expected a whole number >= 1, got "${value}"`);
    return n;
  };
}

/** `caliper doctor --model DIR|URI --p99-ms N (--rate R | --concurrency C) ...` */
export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description(
      'find the stages that make p99 miss a budget under load, try the remedies for them (INT8/FP16 under an accuracy guard, instances, batching, feature store, cache), measure each and keep what meets the budget',
    )
    .requiredOption('--model <dir|uri|name>', 'model folder or models:/ URI (with --url: the served model name)')
    .requiredOption('--p99-ms <ms>', 'p99 latency budget in milliseconds', parsePositiveNumberOption('--p99-ms'))
    .option(
      '--rate <rps>',
      'open-loop load: requests per second (Poisson arrivals)',
      parsePositiveNumberOption('--rate'),
    )
    .option('--concurrency <n>', 'closed-loop load: connections', positiveInteger('--concurrency'))
    .option('--url <url>', 'diagnose a running server, read-only (no remedy is tried)')
    .option(
      '--data <file>',
      'request sample (JSONL, one /predict request per line); default: synthesized from the schema',
    )
    .option('--eval <data>', 'labelled evaluation rows (.csv, .parquet, .jsonl) for the accuracy guard of INT8/FP16')
    .option('--label <column>', 'the label column of --eval')
    .option('--max-drop <pt>', 'most accuracy points (or % more MAE) an optimized model may lose', nonNegative, 1)
    .option(
      '--budget-minutes <m>',
      'start no remedy after this many minutes',
      parsePositiveNumberOption('--budget-minutes'),
    )
    .option(
      '--margin <factor>',
      'accept the remedies only when p99 also meets the budget at this many times the load (default 1.1; 1: a second measurement at the load)',
      parsePositiveNumberOption('--margin'),
    )
    .option(
      '--feature-redis <url>',
      'a Redis next to the server: try serving the features from it (they are copied there)',
    )
    .option(
      '--remedies <ids>',
      'try only these remedies (comma-separated ids, e.g. int8-dynamic,features-redis)',
      (v: string) =>
        v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
    )
    .option('--apply', 'write the result as a new version folder of the model (the served version is not touched)')
    .option(
      '--register <name>',
      'register the result as a new version of NAME in stage Staging, the report as its metrics',
    )
    .option('--registry <dir>', 'registry home for models:/ URIs and --register (default $CALIPER_HOME or ~/.caliper)')
    .option('--report <file.html>', 'write an HTML report (tables, waterfall chart, model.yaml diff)')
    .option('--out <dir>', 'write model.yaml, model.yaml.diff and the optimized model file here')
    .option('--duration <seconds>', 'measurement window per profile', parsePositiveNumberOption('--duration'), 1.5)
    .option('--json', 'print the report as JSON on stdout')
    .action(async (options: DoctorCommandOptions) => {
      if ((options.rate === undefined) === (options.concurrency === undefined))
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          'give the load as exactly one of --rate RPS or --concurrency N',
        );
      if (options.url && (options.apply || options.register || options.eval))
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          '--url is read-only: --apply, --register and --eval need --model DIR|models:/URI',
        );
      if (options.label && !options.eval) throw new CaliperError('CALIPER_INVALID_INPUT', '--label needs --eval DATA');
      const log = (line: string): void => {
        process.stderr.write(`${line}\n`);
      };
      // The doctor's modules (load generator, ONNX tooling, registry) load here, not for --help or other commands.
      const [
        { runDoctor, checkRemedyIds, marginLoad },
        { formatDiagnosis },
        { formatTrials, verdictLine },
        { readRequestsFile },
      ] = await Promise.all([
        import('../doctor/doctor-session.ts'),
        import('../doctor/diagnosis.ts'),
        import('../doctor/doctor-report.ts'),
        import('../bench/request-data.ts'),
      ]);
      if (options.remedies) checkRemedyIds(options.remedies);
      const load =
        options.rate !== undefined
          ? { mode: 'rate' as const, rate: options.rate }
          : { mode: 'concurrency' as const, concurrency: options.concurrency! };
      // A bad --margin fails here, in one line, before anything is printed or served.
      if (options.margin !== undefined) marginLoad(load, options.margin);
      log(
        `caliper doctor: ${options.url ?? options.model}, p99 budget ${options.p99Ms} ms, ${load.mode === 'rate' ? `${load.rate} requests/s` : `${load.concurrency} connections`}${options.url ? ' (read-only)' : ''}`,
      );
      // The doctor's optimized model files are written here; the one kept is moved into --out or the new version
      // below, and the folder goes when the command ends.
      const workDir = mkdtempSync(join(tmpdir(), 'caliper-doctor-work-'));
      try {
        const report = await runDoctor({
          model: options.model,
          ...(options.url ? { url: options.url } : {}),
          budgetMs: options.p99Ms,
          load,
          ...(options.data ? { data: readRequestsFile(options.data) } : {}),
          ...(options.eval ? { eval: options.eval } : {}),
          ...(options.label ? { label: options.label } : {}),
          maxDrop: options.maxDrop,
          ...(options.budgetMinutes !== undefined ? { budgetMinutes: options.budgetMinutes } : {}),
          ...(options.featureRedis ? { featureRedis: options.featureRedis } : {}),
          ...(options.margin !== undefined ? { margin: options.margin } : {}),
          ...(options.remedies ? { remedies: options.remedies } : {}),
          ...(options.registry ? { registry: options.registry } : {}),
          windowMs: options.duration * 1000,
          workDir,
          onProgress: log,
        });
        if (!report.readOnly && (options.apply || options.register)) {
          const [{ resolveModelSource }, writer] = await Promise.all([
            import('../optimize/model-source.ts'),
            import('../doctor/version-writer.ts'),
          ]);
          const source = await resolveModelSource(options.model, options.registry);
          if (options.apply) report.applied = writer.writeNewVersion(source, report);
          if (options.register)
            report.registered = await writer.registerDoctorVersion(source, report, options.register, options.registry);
        }
        if (options.out && !report.readOnly) {
          mkdirSync(options.out, { recursive: true });
          writeFileSync(join(options.out, 'model.yaml'), report.changes.modelYaml);
          writeFileSync(join(options.out, 'model.yaml.diff'), report.changes.yamlDiff);
          if (report.changes.modelFile) {
            const file = join(options.out, 'model.onnx');
            copyFileSync(report.changes.modelFile, file);
            report.changes.modelFile = resolve(file);
          }
        }
        if (report.changes.modelFile && !options.out) {
          // Past this command the work folder is gone: the report names the copy the user keeps, if any.
          if (report.applied) report.changes.modelFile = resolve(report.applied.dir, 'model.onnx');
          else {
            delete report.changes.modelFile;
            if (!report.registered)
              report.advice.push(
                'the optimized model file was not kept: give --out DIR, --apply or --register NAME to keep it',
              );
          }
        }
        if (options.report) {
          const { renderDoctorHtml } = await import('../doctor/doctor-html.ts');
          writeFileSync(options.report, renderDoctorHtml(report));
        }
        if (options.json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        } else {
          const out = (line: string): void => {
            process.stdout.write(`${line}\n`);
          };
          out('\nbefore');
          out(formatDiagnosis(report.before.diagnosis));
          if (report.trials.length > 0) {
            out('\nremedies');
            out(formatTrials(report.trials));
          }
          if (report.after) {
            out('\nafter (measured again on a fresh server)');
            out(formatDiagnosis(report.after.diagnosis));
          }
          for (const advice of report.advice) out(`advice: ${advice}`);
          if (report.changes.yamlDiff) out(`\n${report.changes.yamlDiff}`);
          if (report.changes.modelFile) out(`optimized model: ${report.changes.modelFile}`);
          if (report.applied) out(`applied: version ${report.applied.version} in ${report.applied.dir}`);
          if (report.registered)
            out(
              `registered: models:/${report.registered.name}/${report.registered.version} (${report.registered.stage})`,
            );
          if (options.report) out(`report: ${resolve(options.report)}`);
          out(verdictLine(report));
        }
      } finally {
        rmSync(workDir, { recursive: true, force: true });
      }
    });
}
