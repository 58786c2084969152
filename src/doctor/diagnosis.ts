import { round } from '../bench/measurement-window.ts';
import { PROFILE_STAGES, type ProfileStage, type StageProfile } from './stage-profile.ts';

/** One stage of the breakdown: its mean over all requests and over the p99 tail, and its share of the tail's time. */
export interface StageFinding {
  stage: ProfileStage;
  meanMs: number;
  tailMs: number;
  /** Fraction of the tail requests' time spent in this stage (0..1). */
  tailShare: number;
}

export interface Diagnosis {
  budgetMs: number;
  p99Ms: number;
  met: boolean;
  /** p99 minus the budget (ms); negative when within it. */
  overByMs: number;
  /** Every stage seen, in request order. */
  stages: StageFinding[];
  /** The stages that make p99 miss the budget, the largest first; empty when it is met. */
  culprits: ProfileStage[];
  /** One sentence per culprit, with figures. */
  findings: string[];
}

/** A stage holding this share of the tail requests' time makes p99 miss the budget... */
export const CULPRIT_SHARE = 0.25;
/** ...as does a stage whose mean over every request alone takes this share of the budget. */
export const CULPRIT_MEAN_SHARE = 0.5;
/** A stage whose tail figure is this many times its mean costs only now and then: named as sporadic. */
export const SPORADIC_RATIO = 5;

/**
 * Reads a profile against a p99 budget. When p99 is over it, the culprits are the stages that hold at least
 * CULPRIT_SHARE of the time of the tail requests (those at or above p99) or whose mean alone takes
 * CULPRIT_MEAN_SHARE of the budget, or the largest tail stage when none does;
 * they are ordered by their mean over all requests, largest first: a stage that costs on every request is what a
 * remedy removes, while time that shows in the tail only (a busy machine's scheduling stalls, seen as network) is
 * sporadic. Errors during the measurement count as a miss.
 */
export function diagnose(profile: StageProfile, budgetMs: number): Diagnosis {
  const tailTotal = PROFILE_STAGES.reduce((sum, stage) => sum + (profile.tailMs[stage] ?? 0), 0);
  const stages: StageFinding[] = PROFILE_STAGES.filter(
    (stage) => profile.tailMs[stage] !== undefined || profile.meanMs[stage] !== undefined,
  ).map((stage) => ({
    stage,
    meanMs: profile.meanMs[stage] ?? 0,
    tailMs: profile.tailMs[stage] ?? 0,
    tailShare: tailTotal > 0 ? round((profile.tailMs[stage] ?? 0) / tailTotal, 3) : 0,
  }));
  const p99 = profile.latencyMs.p99;
  const met = p99 <= budgetMs && profile.errors === 0;
  let culprits: StageFinding[] = [];
  if (!met && stages.length > 0) {
    culprits = stages.filter((s) => s.tailShare >= CULPRIT_SHARE || s.meanMs >= CULPRIT_MEAN_SHARE * budgetMs);
    if (culprits.length === 0) culprits = [[...stages].sort((a, b) => b.tailMs - a.tailMs)[0]!];
    culprits.sort((a, b) => b.meanMs - a.meanMs || b.tailMs - a.tailMs);
  }
  const findings = culprits.map(
    (s) =>
      `${s.stage} takes ${s.tailMs.toFixed(2)} ms of the p99 tail (${Math.round(s.tailShare * 100)}%; mean ${s.meanMs.toFixed(2)} ms over all requests)${s.tailMs > SPORADIC_RATIO * Math.max(s.meanMs, 0.01) ? `: sporadic, ${Math.round(s.tailMs / Math.max(s.meanMs, 0.01))}× its mean in the tail (stalls, e.g. a machine short of CPU)` : ''}`,
  );
  if (!met && profile.errors > 0) findings.unshift(`${profile.errors} requests failed during the measurement`);
  if (profile.cold && profile.cold.p99Ms > budgetMs)
    findings.push(
      `cold start: the first ${profile.cold.requests} answers after the server started had a p99 of ${profile.cold.p99Ms.toFixed(2)} ms (slowest ${profile.cold.maxMs.toFixed(2)} ms), over the budget`,
    );
  return {
    budgetMs,
    p99Ms: p99,
    met,
    overByMs: round(p99 - budgetMs, 3),
    stages,
    culprits: culprits.map((s) => s.stage),
    findings,
  };
}

/** The breakdown as aligned text: one row per stage, mean and tail figures, culprits marked. */
export function formatDiagnosis(diagnosis: Diagnosis): string {
  const lines = [
    `p99 ${diagnosis.p99Ms.toFixed(2)} ms against a budget of ${diagnosis.budgetMs} ms: ${diagnosis.met ? 'met' : `missed by ${diagnosis.overByMs.toFixed(2)} ms`}`,
    `${'stage'.padEnd(12)} ${'mean ms'.padStart(9)} ${'p99-tail ms'.padStart(12)} ${'share'.padStart(6)}`,
  ];
  for (const s of diagnosis.stages) {
    const mark = diagnosis.culprits.includes(s.stage) ? '  ← over budget' : '';
    lines.push(
      `${s.stage.padEnd(12)} ${s.meanMs.toFixed(3).padStart(9)} ${s.tailMs.toFixed(3).padStart(12)} ${`${Math.round(s.tailShare * 100)}%`.padStart(6)}${mark}`,
    );
  }
  for (const f of diagnosis.findings) lines.push(`- ${f}`);
  return lines.join('\n');
}
