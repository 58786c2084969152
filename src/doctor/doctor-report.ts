import type { Diagnosis } from './diagnosis.ts';
import type { DoctorLoad, ProfileStage, StageProfile } from './stage-profile.ts';

/** A load in words: "2968 requests/s" or "3 connections". */
export const loadText = (load: DoctorLoad): string =>
  load.mode === 'rate'
    ? `${load.rate} requests/s`
    : `${load.concurrency} connection${load.concurrency === 1 ? '' : 's'}`;

/** How one remedy ended: kept (it moved p99 and passed its guards), dropped after measuring, refused, or skipped. */
export type TrialOutcome = 'kept' | 'dropped' | 'refused' | 'skipped';

export interface RemedyTrial {
  remedy: string;
  stage: ProfileStage;
  title: string;
  outcome: TrialOutcome;
  /** What it changed, or why it ended as it did. */
  detail: string;
  /** p99 (ms) of the model as kept so far, and with this remedy added; null when not measured. */
  p99BeforeMs: number | null;
  p99AfterMs: number | null;
  /** The measured candidate's profile, when measured. */
  profile?: StageProfile;
  /**
   * The model as kept so far, measured in the same alternated rounds as the candidate (absent for the cold-path
   * remedies, judged on fresh servers): the pair's figures, stage by stage, are the comparison the outcome rests on.
   */
  keptProfile?: StageProfile;
  /** The accuracy guard's figures, for optimized model files. */
  guard?: { accuracyBefore?: number; accuracyAfter?: number; maeBefore?: number; maeAfter?: number; note: string };
  degradedShare?: number;
  /**
   * The remedy whose trial served the same configuration (model.yaml and model file bytes) earlier in this run: its
   * measurement is reused, not taken again, and its figures and outcome are repeated here.
   */
  sameAs?: string;
  /** Skipped because --budget-minutes was spent before it started; the text outputs name these on one line. */
  budgetSpent?: true;
  /** Seconds the trial took (optimizing, serving and measuring). */
  seconds: number;
}

/** One fresh-server judgement of a kept set: the verdict at the load, its margin, and whether it was accepted. */
export interface Judgement {
  /** The kept remedies judged. */
  kept: string[];
  /** p99 (ms) at the load over `requests` answers. */
  p99Ms: number;
  requests: number;
  /** The kept set's p99 (ms) in the side-by-side rounds at the load, when measured there. */
  sideBySideP99Ms?: number;
  /** p99 (ms) at the margin's load over `marginRequests` answers; absent when the verdict missed the budget. */
  marginP99Ms?: number;
  marginRequests?: number;
  /** Both within the budget. */
  accepted: boolean;
}

export interface DoctorReport {
  kind: 'caliper-doctor';
  version: 1;
  model: string;
  /** The model folder or URI, or the server's URL in read-only mode. */
  target: string;
  readOnly: boolean;
  budgetMs: number;
  load: StageProfile['load'];
  data: { source: string; requests: number; distinct: number; repeatShare: number };
  startedAt: string;
  /**
   * The model as served. `margin`: when it met the budget, the same server measured again at the margin's load right
   * after, as a kept set's judgement is (a served model within the budget only at the load itself is not "met").
   */
  before: {
    profile: StageProfile;
    diagnosis: Diagnosis;
    margin?: { load: StageProfile['load']; profile: StageProfile; diagnosis: Diagnosis };
  };
  trials: RemedyTrial[];
  /**
   * Measured again on a fresh server with every kept remedy, as `caliper bench` measures the applied folder (the
   * budget's judgement); absent when nothing was kept. `sideBySideP99Ms`: the kept set's p99 in the alternated rounds
   * of the last remedy measured against it, which the search also had to bring BUDGET_HEADROOM under the budget.
   */
  after?: {
    profile: StageProfile;
    diagnosis: Diagnosis;
    sideBySideP99Ms?: number;
    /**
     * The same fresh server measured again at the margin's load (MARGIN_FACTOR times the load) right after; absent
     * when the verdict missed the budget.
     */
    margin?: { load: StageProfile['load']; profile: StageProfile; diagnosis: Diagnosis };
  };
  /**
   * True when the final measurement meets the budget: with kept remedies, the fresh server's verdict at the load and
   * its margin both; with none, the "before" and its margin both.
   */
  met: boolean;
  /** Each fresh-server judgement of a kept set, in order (absent in read-only mode). */
  judgements?: Judgement[];
  /** For stages no remedy shortens. */
  advice: string[];
  changes: {
    /** `diff -u` of the served version's model.yaml and the changed one; '' when unchanged. */
    yamlDiff: string;
    modelYaml: string;
    /** The optimized ONNX file, when a kept remedy wrote one. */
    modelFile?: string;
  };
  applied?: { dir: string; version: number };
  registered?: { name: string; version: number; stage: string };
  elapsedS: number;
}

const ms = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v.toFixed(2));

/** The one line naming the remedies left untried when --budget-minutes was spent, in the order they came. */
export function budgetSpentLine(remedies: readonly string[]): string {
  return `not tried, time budget spent: ${remedies.join(', ')}`;
}

/**
 * The outcome table as aligned text: one row per remedy, p99 before/after and why it was kept or dropped; the
 * remedies skipped because --budget-minutes was spent share one line (budgetSpentLine), where the first of them was.
 */
export function formatTrials(trials: readonly RemedyTrial[]): string {
  const lines = [
    `${'remedy'.padEnd(22)} ${'stage'.padEnd(11)} ${'outcome'.padEnd(8)} ${'p99 ms'.padStart(16)}  detail`,
  ];
  const spent = trials.filter((t) => t.budgetSpent).map((t) => t.remedy);
  let spentNamed = false;
  for (const t of trials) {
    if (t.budgetSpent) {
      if (!spentNamed) lines.push(budgetSpentLine(spent));
      spentNamed = true;
      continue;
    }
    const p99 = t.p99AfterMs !== null ? `${ms(t.p99BeforeMs)} → ${ms(t.p99AfterMs)}` : '-';
    lines.push(`${t.remedy.padEnd(22)} ${t.stage.padEnd(11)} ${t.outcome.padEnd(8)} ${p99.padStart(16)}  ${t.detail}`);
  }
  return lines.join('\n');
}

/**
 * The closing line: whether the budget is met, on which measurement (the fresh server of the kept remedies, or the
 * "before" when none was kept), with the kept remedies and, when missed, what is left to the user.
 */
export function verdictLine(report: DoctorReport): string {
  const judged = report.after ?? report.before;
  const p99 = `p99 ${judged.profile.latencyMs.p99.toFixed(2)} ms`;
  const kept = report.trials.filter((t) => t.outcome === 'kept').map((t) => t.remedy);
  const margin = judged.margin;
  const on = report.after
    ? `measured again on a fresh server with ${kept.join(', ')} over ${judged.profile.measuredS} s (${judged.profile.requests} answers)`
    : report.met && margin
      ? 'as served: it meets the budget already, with the margin'
      : 'as served, no remedy kept';
  const marginText = margin
    ? ` at ${loadText(report.load)}, and p99 ${margin.profile.latencyMs.p99.toFixed(2)} ms at ${loadText(margin.load)} (the margin, ${margin.profile.requests} answers)`
    : '';
  if (report.met) return `budget met: ${p99} within ${report.budgetMs} ms${marginText}, ${on}`;
  if (margin && judged.diagnosis.met) {
    const culprits = margin.diagnosis.culprits.join(', ');
    return `budget not met with a margin: ${p99} within ${report.budgetMs} ms at ${loadText(report.load)} but ${margin.profile.latencyMs.p99.toFixed(2)} ms at ${loadText(margin.load)} (the margin, ${margin.profile.requests} answers), ${on}; so near capacity the next run at ${loadText(report.load)} may miss it, and no remedy left to try ${culprits ? `for ${culprits} ` : ''}brings the margin under (the remedies table says what each did${report.advice.length > 0 ? ', the advice what is left to do' : ''})`;
  }
  const culprits = judged.diagnosis.culprits.join(', ');
  return `budget not met: ${p99} over ${report.budgetMs} ms, ${on}; no remedy left to try ${culprits ? `for ${culprits} ` : ''}brings it under (the remedies table says what each did${report.advice.length > 0 ? ', the advice what is left to do' : ''})`;
}
