import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { listModelVersions, MODEL_FILE, parseModelConfigText } from '../config/model-config-file.ts';
import { CaliperError } from '../errors.ts';
import type { ModelSource } from '../optimize/model-source.ts';
import type { DoctorReport } from './doctor-report.ts';

/**
 * --apply: the doctor's model as a new version folder next to the served ones, `<dir>/<N+1>/model.onnx` and its own
 * model.yaml; the served version's files are not touched. A server following the folder picks it up on reload.
 */
export function writeNewVersion(source: ModelSource, report: DoctorReport): { dir: string; version: number } {
  if (source.from.startsWith('models:/'))
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--apply writes a version folder into a model folder; ${source.name} is a registry URI: use --register NAME`,
    );
  const modelDir = source.config.dir;
  const versions = listModelVersions(modelDir);
  const version = Math.max(0, ...versions) + 1;
  const dir = join(modelDir, String(version));
  if (existsSync(dir)) throw new CaliperError('CALIPER_INVALID_INPUT', `--apply: ${dir} exists already`);
  parseModelConfigText(report.changes.modelYaml, join(dir, 'model.yaml'), modelDir);
  mkdirSync(dir);
  try {
    copyFileSync(report.changes.modelFile ?? source.modelPath, join(dir, MODEL_FILE));
    writeFileSync(join(dir, 'model.yaml'), report.changes.modelYaml);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return { dir, version };
}

/** The report's figures as flat registry metrics: p99 and per-stage tail figures before and after, the budget. */
export function doctorMetrics(report: DoctorReport): Record<string, number> {
  const metrics: Record<string, number> = {
    p99_budget_ms: report.budgetMs,
    p99_before_ms: report.before.profile.latencyMs.p99,
    p50_before_ms: report.before.profile.latencyMs.p50,
    budget_met: report.met ? 1 : 0,
    remedies_kept: report.trials.filter((t) => t.outcome === 'kept').length,
  };
  if (report.after) {
    metrics.p99_after_ms = report.after.profile.latencyMs.p99;
    metrics.p50_after_ms = report.after.profile.latencyMs.p50;
  }
  for (const [stage, ms] of Object.entries(report.before.profile.tailMs)) metrics[`tail_${stage}_before_ms`] = ms;
  for (const [stage, ms] of Object.entries(report.after?.profile.tailMs ?? {})) metrics[`tail_${stage}_after_ms`] = ms;
  for (const t of report.trials) {
    if (t.guard?.accuracyBefore !== undefined) metrics.accuracy_before = t.guard.accuracyBefore;
    if (t.outcome === 'kept' && t.guard?.accuracyAfter !== undefined) metrics.accuracy_after = t.guard.accuracyAfter;
  }
  return metrics;
}

/**
 * --register NAME: the doctor's model as a new registry version of NAME in stage Staging, with the report's figures
 * as its metrics and the kept remedies as a tag. A feature file named relative to the model folder is made absolute,
 * since the registry keeps model.yaml's text only.
 */
export async function registerDoctorVersion(
  source: ModelSource,
  report: DoctorReport,
  name: string,
  registryLocation?: string,
): Promise<{ name: string; version: number; stage: string }> {
  const { ModelRegistry } = await import('../registry/model-registry.ts');
  const scratch = mkdtempSync(join(tmpdir(), 'caliper-doctor-register-'));
  const registry = await ModelRegistry.connect({ registry: registryLocation });
  try {
    const document = parseDocument(report.changes.modelYaml);
    const featureSource = document.getIn(['features', 'source']);
    if (typeof featureSource === 'string' && !isAbsolute(featureSource))
      document.setIn(['features', 'source'], resolve(source.config.dir, featureSource));
    const configFile = join(scratch, 'model.yaml');
    writeFileSync(configFile, document.toString());
    const kept = report.trials.filter((t) => t.outcome === 'kept').map((t) => t.remedy);
    const registered = await registry.register({
      file: report.changes.modelFile ?? source.modelPath,
      configFile,
      name,
      description: `caliper doctor of ${source.from}: p99 ${report.before.profile.latencyMs.p99} → ${report.after?.profile.latencyMs.p99 ?? report.before.profile.latencyMs.p99} ms (budget ${report.budgetMs} ms)`,
      tags: { optimized_from: source.from, doctor_remedies: kept.join(',') || 'none' },
      metrics: Object.fromEntries(Object.entries(doctorMetrics(report)).filter(([, v]) => Number.isFinite(v))),
    });
    const staged = await registry.setStage(name, registered.version, 'Staging');
    return { name, version: staged.version, stage: staged.stage };
  } finally {
    await registry.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
