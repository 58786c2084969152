import type { Diagnosis } from './diagnosis.ts';
import type { ProfileStage, StageProfile } from './stage-profile.ts';

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
  before: { profile: StageProfile; diagnosis: Diagnosis };
  trials: RemedyTrial[];
  /**
   * Measured again on a fresh server with every kept remedy, as `caliper bench` measures the applied folder (the
   * budget's judgement); absent when nothing was kept. `sideBySideP99Ms`: the kept set's p99 in the alternated rounds
   * of the last remedy measured against it, which the search also had to bring BUDGET_HEADROOM under the budget.
   */
  after?: { profile: StageProfile; diagnosis: Diagnosis; sideBySideP99Ms?: number };
  /** True when the final measurement (after, or before when nothing was kept) meets the budget. */
  met: boolean;
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
  const on = report.after
    ? `measured again on a fresh server with ${kept.join(', ')} over ${judged.profile.measuredS} s (${judged.profile.requests} answers)`
    : 'as served, no remedy kept';
  if (report.met) return `budget met: ${p99} within ${report.budgetMs} ms, ${on}`;
  const culprits = judged.diagnosis.culprits.join(', ');
  return `budget not met: ${p99} over ${report.budgetMs} ms, ${on}; no remedy left to try ${culprits ? `for ${culprits} ` : ''}brings it under (the remedies table says what each did${report.advice.length > 0 ? ', the advice what is left to do' : ''})`;
}
