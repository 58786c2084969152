import { mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { round } from '../bench/measurement-window.ts';
import { startModelServer, type ModelServerProcess } from '../bench/model-server-process.ts';
import type { RequestData } from '../bench/request-data.ts';
import { requestSchemaFromOpenApi, requestSchemaOfInputs, synthesizeRequests } from '../bench/request-synthesizer.ts';
import { parseModelConfigText } from '../config/model-config-file.ts';
import { CaliperError } from '../errors.ts';
import { CandidateModel, changedConfigText } from './candidate-model.ts';
import { diagnose } from './diagnosis.ts';
import type { DoctorReport, RemedyTrial } from './doctor-report.ts';
import { degradedShare, readFeatureCounters } from './feature-counters.ts';
import { NO_CHANGE, stackChanges, unifiedDiff, type ModelChange } from './model-change.ts';
import { REMEDIES, remediesFor, STAGE_ADVICE, type Remedy, type RemedyContext } from './remedy-catalogue.ts';
import { measureStages, type DoctorLoad, type StageProfile } from './stage-profile.ts';

export interface DoctorOptions {
  /** Model folder or models:/ URI (served by the doctor in child servers), or, with `url`, the served model's name. */
  model: string;
  /** A running server to diagnose read-only: no remedy is tried. */
  url?: string;
  budgetMs: number;
  load: DoctorLoad;
  /** Request sample; default: requests synthesized from the model's request schema. */
  data?: RequestData;
  /** Labelled evaluation data (request rows through the model's pipeline, or tensors) for the accuracy guard. */
  eval?: string;
  label?: string;
  maxDrop?: number;
  /** Remedies are not started past this many minutes (the trial under way finishes). */
  budgetMinutes?: number;
  featureRedis?: string;
  /** Only these remedies (ids of REMEDIES) are tried; default all. */
  remedies?: string[];
  registry?: string;
  /** Measurement window (ms) per profile; default 1500. */
  windowMs?: number;
  /** Where optimized model files are written (default a fresh temporary folder). */
  workDir?: string;
  /** A progress line per step. */
  onProgress?: (line: string) => void;
  startServer?: (modelDir: string) => Promise<ModelServerProcess>;
}

/** p99 must drop by at least this fraction for a remedy to count as moving it (this machine's noise is ±5–10%). */
export const MIN_P99_GAIN = 0.1;
/** Synthesized requests: more than a short measurement sends, so a response cache never answers them. */
const SYNTHESIZED_REQUESTS = 20_000;

const invalid = (message: string): CaliperError => new CaliperError('CALIPER_INVALID_INPUT', message);

/** Throws a CALIPER_INVALID_INPUT naming the ids that are not remedies of REMEDIES. */
export function checkRemedyIds(ids: readonly string[]): void {
  const unknown = ids.filter((id) => !REMEDIES.some((r) => r.id === id));
  if (unknown.length > 0)
    throw invalid(`--remedies: unknown ${unknown.join(', ')} (known: ${REMEDIES.map((r) => r.id).join(', ')})`);
}

/** Share of a request sample a cache holding every answer would hit: 1 − distinct/total. */
export function repeatShareOf(data: RequestData): { distinct: number; share: number } {
  const distinct = new Set(data.documents.map((d) => JSON.stringify(d))).size;
  return { distinct, share: data.documents.length > 0 ? round(1 - distinct / data.documents.length, 3) : 0 };
}

const formatSeconds = (s: number): string =>
  s < 90 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;

/** Times steps and prints one line per step with the elapsed time and an ETA from the mean step so far. */
class ProgressLine {
  private readonly started = performance.now();
  private done = 0;

  constructor(
    private planned: number,
    private readonly print: ((line: string) => void) | undefined,
  ) {}

  replan(remaining: number): void {
    this.planned = this.done + remaining;
  }

  step(text: string): void {
    this.done++;
    const elapsed = (performance.now() - this.started) / 1000;
    const eta = (elapsed / this.done) * Math.max(0, this.planned - this.done);
    this.print?.(
      `[${this.done}/${Math.max(this.planned, this.done)}] ${text}  (${formatSeconds(elapsed)} elapsed, ETA ${formatSeconds(eta)})`,
    );
  }
}

/**
 * `caliper doctor`: drives the load, breaks p99 down by stage, names the stages that make it miss the budget, then
 * tries the remedies for each of them in order of expected gain, each on a fresh server and measured at the same
 * load, keeping those that move p99 by MIN_P99_GAIN and pass their guards, until the budget is met.
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  if (!(options.budgetMs > 0)) throw invalid(`--p99-ms: expected a positive number, got ${options.budgetMs}`);
  const startedAt = new Date().toISOString();
  const started = performance.now();
  const windowMs = options.windowMs ?? 1500;
  if (options.remedies) checkRemedyIds(options.remedies);
  if (options.url) return diagnoseRunningServer(options, startedAt, started, windowMs);

  const { resolveModelSource } = await import('../optimize/model-source.ts');
  const source = await resolveModelSource(options.model, options.registry);
  const name = source.config.name;
  const data =
    options.data ??
    synthesizeRequests(requestSchemaOfInputs(source.config.inputs), `${name} request schema`, {
      count: SYNTHESIZED_REQUESTS,
    });
  const repeat = repeatShareOf(data);
  const startServer = options.startServer ?? ((dir: string) => startModelServer(dir));
  const workDir = options.workDir ?? mkdtempSync(join(tmpdir(), 'caliper-doctor-work-'));
  const deadline = options.budgetMinutes !== undefined ? started + options.budgetMinutes * 60_000 : Infinity;
  const progress = new ProgressLine(2, options.onProgress);

  const measure = async (
    change: ModelChange,
  ): Promise<{ profile: StageProfile; degradedShare: number | undefined }> => {
    const candidate = new CandidateModel(source, change);
    let server: ModelServerProcess | undefined;
    try {
      server = await startServer(candidate.dir);
      const countersBefore = source.config.features ? await readFeatureCounters(server.url, name) : undefined;
      const profile = await measureStages({ url: server.url, model: name, data, load: options.load, windowMs });
      const countersAfter = countersBefore ? await readFeatureCounters(server.url, name) : undefined;
      return {
        profile,
        degradedShare: countersBefore && countersAfter ? degradedShare(countersBefore, countersAfter) : undefined,
      };
    } finally {
      await server?.stop();
      candidate.remove();
    }
  };

  // Evaluation data for the accuracy guard goes through the model's own pipeline (request rows), as quantize --model.
  let closeTarget: (() => Promise<void>) | undefined;
  let evalData: RemedyContext['evalData'];
  let calibration: RemedyContext['calibration'];
  if (options.eval) {
    const { OptimizationTarget } = await import('../optimize/optimization-target.ts');
    const target = await OptimizationTarget.open(options.model, options.registry);
    closeTarget = () => target.close();
    evalData = await target.data(options.eval, 'eval', options.label);
    calibration = await target.data(options.eval, 'calibration', undefined, 128);
  }

  try {
    const first = await measure(NO_CHANGE);
    const beforeDiagnosis = diagnose(first.profile, options.budgetMs);
    progress.step(
      `diagnosis: p99 ${first.profile.latencyMs.p99.toFixed(2)} ms (budget ${options.budgetMs} ms)${beforeDiagnosis.met ? ', met' : `; over budget: ${beforeDiagnosis.culprits.join(', ')}`}`,
    );
    let change: ModelChange = NO_CHANGE;
    let current = first.profile;
    const trials: RemedyTrial[] = [];
    const contextOf = (profile: StageProfile): RemedyContext => {
      const dir = source.config.dir;
      const config = parseModelConfigText(changedConfigText(source, change, dir), source.config.file, dir);
      return {
        source,
        config,
        change,
        profile,
        budgetMs: options.budgetMs,
        workDir,
        ...(evalData !== undefined ? { evalData } : {}),
        ...(calibration !== undefined ? { calibration } : {}),
        maxDrop: options.maxDrop ?? 1,
        ...(options.featureRedis ? { featureRedis: options.featureRedis } : {}),
        cores: availableParallelism(),
        repeatShare: repeat.share,
        distinctRequests: repeat.distinct,
      };
    };

    const advice: string[] = [];
    const tried = new Set<string>();
    const allowed = (remedy: Remedy): boolean => !options.remedies || options.remedies.includes(remedy.id);
    /**
     * The next remedy: diagnosed again on the model as kept so far (fixing one stage can put another over the
     * budget, as in the seed's story), the first untried remedy of the first culprit that has one.
     */
    const nextRemedy = (): Remedy | undefined => {
      const now = diagnose(current, options.budgetMs);
      if (now.met) return undefined;
      for (const stage of now.culprits) {
        const remedies = remediesFor(stage, contextOf(current));
        const advised = `${stage}: ${STAGE_ADVICE[stage]}`;
        if (remedies.length === 0 && STAGE_ADVICE[stage] && !advice.includes(advised)) advice.push(advised);
        const next = remedies.find((r) => !tried.has(r.id) && allowed(r));
        if (next) return next;
      }
      return undefined;
    };
    const pending = (): number =>
      diagnose(current, options.budgetMs).culprits.reduce(
        (n, stage) => n + remediesFor(stage, contextOf(current)).filter((r) => !tried.has(r.id) && allowed(r)).length,
        0,
      );
    for (let remedy = nextRemedy(); remedy !== undefined; remedy = nextRemedy()) {
      tried.add(remedy.id);
      progress.replan(pending() + 2);
      const trialStarted = performance.now();
      const base: Omit<RemedyTrial, 'outcome' | 'detail' | 'seconds'> = {
        remedy: remedy.id,
        stage: remedy.stage,
        title: remedy.title,
        p99BeforeMs: current.latencyMs.p99,
        p99AfterMs: null,
      };
      const finish = (trial: RemedyTrial): void => {
        trial.seconds = round((performance.now() - trialStarted) / 1000, 1);
        trials.push(trial);
        progress.step(
          `${remedy.id}: ${trial.outcome}${trial.p99AfterMs !== null ? ` (p99 ${trial.p99BeforeMs!.toFixed(2)} → ${trial.p99AfterMs.toFixed(2)} ms)` : ''} — ${trial.detail}`,
        );
      };
      if (performance.now() > deadline) {
        finish({
          ...base,
          outcome: 'skipped',
          detail: `--budget-minutes ${options.budgetMinutes} spent`,
          seconds: 0,
        });
        continue;
      }
      const context = contextOf(current);
      const plan = await remedy.plan(context);
      if (plan.kind !== 'try') {
        finish({
          ...base,
          outcome: plan.kind === 'skip' ? 'skipped' : 'refused',
          detail: plan.reason,
          ...(plan.kind === 'refuse' && plan.guard ? { guard: plan.guard } : {}),
          seconds: 0,
        });
        continue;
      }
      const candidate = stackChanges(change, plan.change);
      let measured: Awaited<ReturnType<typeof measure>>;
      try {
        measured = await measure(candidate);
      } catch (error) {
        finish({ ...base, outcome: 'dropped', detail: `${plan.detail}: ${(error as Error).message}`, seconds: 0 });
        continue;
      }
      const p99 = measured.profile.latencyMs.p99;
      const trial: RemedyTrial = {
        ...base,
        outcome: 'dropped',
        detail: plan.detail,
        p99AfterMs: p99,
        profile: measured.profile,
        ...(plan.guard ? { guard: plan.guard } : {}),
        ...(measured.degradedShare !== undefined ? { degradedShare: round(measured.degradedShare, 4) } : {}),
        seconds: 0,
      };
      const refusal = remedy.refuseAfter?.({ degradedShare: measured.degradedShare }, context);
      if (measured.profile.errors > 0) {
        trial.detail = `${plan.detail}; ${measured.profile.errors} requests failed`;
      } else if (refusal) {
        trial.outcome = 'refused';
        trial.detail = `${plan.detail}; ${refusal}`;
      } else if (p99 > current.latencyMs.p99 * (1 - MIN_P99_GAIN)) {
        trial.detail = `${plan.detail}; p99 did not drop by ${MIN_P99_GAIN * 100}% or more`;
      } else {
        trial.outcome = 'kept';
        change = candidate;
        current = measured.profile;
      }
      finish(trial);
    }

    let after: DoctorReport['after'];
    if (change !== NO_CHANGE) {
      // The kept remedies together, measured again on a fresh server: the figure the outcome stands on.
      const again = await measure(change);
      after = { profile: again.profile, diagnosis: diagnose(again.profile, options.budgetMs) };
      progress.step(
        `re-measured with ${trials.filter((t) => t.outcome === 'kept').length} kept remedies: p99 ${again.profile.latencyMs.p99.toFixed(2)} ms (${after.diagnosis.met ? 'within' : 'over'} the ${options.budgetMs} ms budget)`,
      );
    }
    const modelYaml = changedConfigText(source, change, source.config.dir);
    return {
      kind: 'caliper-doctor',
      version: 1,
      model: name,
      target: options.model,
      readOnly: false,
      budgetMs: options.budgetMs,
      load: options.load,
      data: {
        source: data.source,
        requests: data.documents.length,
        distinct: repeat.distinct,
        repeatShare: repeat.share,
      },
      startedAt,
      before: { profile: first.profile, diagnosis: beforeDiagnosis },
      trials,
      ...(after ? { after } : {}),
      met: (after ?? { diagnosis: beforeDiagnosis }).diagnosis.met,
      advice,
      changes: {
        yamlDiff: unifiedDiff(source.configText, modelYaml, `${source.from}/model.yaml`, 'doctor/model.yaml'),
        modelYaml,
        ...(change.modelFile ? { modelFile: change.modelFile } : {}),
      },
      elapsedS: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    await closeTarget?.();
  }
}

/** --url: the breakdown of a running server under the load, with the remedies that would apply, none tried. */
async function diagnoseRunningServer(
  options: DoctorOptions,
  startedAt: string,
  started: number,
  windowMs: number,
): Promise<DoctorReport> {
  const url = options.url!.replace(/\/$/, '');
  let data = options.data;
  if (!data) {
    const openapi = await fetch(`${url}/openapi.json`).then(
      (r) => (r.ok ? r.json() : undefined),
      () => undefined,
    );
    const schema = openapi ? requestSchemaFromOpenApi(openapi, options.model) : undefined;
    if (!schema)
      throw invalid(
        `--url ${url}: the server describes no /models/${options.model}/predict request schema; pass --data REQUESTS.jsonl`,
      );
    data = synthesizeRequests(schema, `${url} OpenAPI`, { count: SYNTHESIZED_REQUESTS });
  }
  const repeat = repeatShareOf(data);
  const progress = new ProgressLine(1, options.onProgress);
  const profile = await measureStages({ url, model: options.model, data, load: options.load, windowMs });
  const diagnosis = diagnose(profile, options.budgetMs);
  progress.step(`diagnosis (read-only): p99 ${profile.latencyMs.p99.toFixed(2)} ms (budget ${options.budgetMs} ms)`);
  const advice = diagnosis.culprits.map(
    (stage) =>
      `${stage}: ${STAGE_ADVICE[stage] ?? `run caliper doctor --model DIR on the model folder to try the ${stage} remedies`}`,
  );
  return {
    kind: 'caliper-doctor',
    version: 1,
    model: options.model,
    target: url,
    readOnly: true,
    budgetMs: options.budgetMs,
    load: options.load,
    data: {
      source: data.source,
      requests: data.documents.length,
      distinct: repeat.distinct,
      repeatShare: repeat.share,
    },
    startedAt,
    before: { profile, diagnosis },
    trials: [],
    met: diagnosis.met,
    advice,
    changes: { yamlDiff: '', modelYaml: '' },
    elapsedS: round((performance.now() - started) / 1000, 1),
  };
}
