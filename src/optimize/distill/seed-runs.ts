import { openSession } from '../onnx/ort-session.ts';
import type { DistillProgress } from './distill-options.ts';
import {
  seedFigures,
  summariseSeeds,
  type SeedFigures,
  type SeedRun,
  type SeedSummary,
  type TrainedFigures,
} from './distill-report.ts';
import type { TrainingSettings } from './distill-trainer.ts';
import type { StudentScorer } from './student-evaluation.ts';
import type { StudentSpec } from './student-spec.ts';
import { trainAndExport, type DistillSamples } from './student-training.ts';
import type { Teacher } from './teacher-model.ts';

/** What the extra seeds are trained and scored like: the first seed's setup and figures. */
export interface SeedRunsInput {
  spec: StudentSpec;
  teacher: Teacher;
  samples: DistillSamples;
  settings: TrainingSettings;
  /** Seeds in all, the first included (≥ 2 for a summary to mean anything). */
  seedCount: number;
  scorer: StudentScorer;
  /** The first seed's distilled student (and baseline, whose presence means every seed trains one). */
  first: { distilled: TrainedFigures; baseline?: TrainedFigures };
  progress?: DistillProgress;
}

/**
 * Trains seeds `settings.seed + 1` … `settings.seed + seedCount − 1` on the same teacher logits (each with its
 * baseline when the first had one), scores each, and summarises all seeds as mean ± sd. Each extra student is
 * disposed and its session released before the next trains.
 */
export async function runSeeds(input: SeedRunsInput): Promise<SeedSummary> {
  const { spec, teacher, samples, settings, seedCount, scorer, first, progress } = input;
  const runs: SeedRun[] = [
    {
      seed: settings.seed,
      distilled: seedFigures(first.distilled),
      ...(first.baseline ? { baseline: seedFigures(first.baseline) } : {}),
    },
  ];
  for (let seed = settings.seed + 1; seed < settings.seed + seedCount; seed++) {
    const trainOne = async (alpha: number, phase: string): Promise<SeedFigures> => {
      progress?.onPhase?.(`${phase} seed ${seed}`, settings.epochs);
      const trained = await trainAndExport(spec, teacher, samples, { ...settings, alpha, seed }, progress);
      trained.student.dispose();
      const session = await openSession(trained.bytes, { intraOpNumThreads: 1 });
      try {
        return seedFigures({ ...(await scorer.score(session)), ...trained.figures });
      } finally {
        await session.release();
      }
    };
    const distilledRun = await trainOne(settings.alpha, 'distill');
    runs.push({
      seed,
      distilled: distilledRun,
      ...(first.baseline ? { baseline: await trainOne(0, 'baseline') } : {}),
    });
  }
  return summariseSeeds(runs, scorer.teacher.accuracy);
}
