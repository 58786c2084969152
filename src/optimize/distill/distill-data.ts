import { loadDataset, sampleSize, sliceDataset, type Dataset } from '../datasets/dataset.ts';
import { DatasetError } from '../datasets/dataset-error.ts';
import { datasetFromFeedSet, isFeedSet } from '../datasets/feed-set.ts';
import { DistillError } from './distill-error.ts';
import { invalidOption } from './distill-error.ts';
import type { DataSource, DistillOptions } from './distill-options.ts';
import type { TrainingSettings } from './distill-trainer.ts';

/** The data sets of one distillation, checked against each other (not yet against the teacher). */
export interface DistillData {
  /** What the student trains on (less the validation tail, cut to `trainSamples`). */
  train: Dataset;
  /** The held-out training tail when `validationSplit` is given. */
  validation?: Dataset;
  /** The eval data, cut to `evalSamples`, when given. */
  evalData?: Dataset;
  /** What early stopping watches: the validation tail, else the eval data, else nothing. */
  stopOn?: Dataset;
  /** What the report should say about the choice of data. */
  warnings: string[];
}

async function resolveData(source: DataSource, purpose: string, limit: number | undefined): Promise<Dataset> {
  try {
    let data = isFeedSet(source)
      ? datasetFromFeedSet(source, purpose)
      : typeof source === 'object' && 'features' in source
        ? source
        : await loadDataset(source);
    if (limit !== undefined && limit < data.count) data = sliceDataset(data, 0, limit);
    return data;
  } catch (error) {
    // Readers report unreadable files with DatasetError, fs errors or plain Errors; all name the problem.
    if (error instanceof DatasetError || error instanceof Error) {
      throw new DistillError('CALIPER_DISTILL_DATA', `${purpose} data: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

/** The training data, less the validation tail when `validationSplit` is given, cut to `trainSamples`. */
async function splitTraining(options: DistillOptions): Promise<{ train: Dataset; validation?: Dataset }> {
  if (options.validationSplit === undefined)
    return { train: await resolveData(options.train, 'training', options.trainSamples) };
  const all = await resolveData(options.train, 'training', undefined);
  const held = options.validationSplit < 1 ? Math.round(all.count * options.validationSplit) : options.validationSplit;
  if (held < 1 || held >= all.count) {
    throw invalidOption(
      `validation split ${options.validationSplit} holds out ${held} of the ${all.count} training samples; it must leave at least one on each side`,
    );
  }
  const rest = all.count - held;
  const validation = { ...sliceDataset(all, rest, held), source: `${all.source} [last ${held}]` };
  const train = sliceDataset(all, 0, Math.min(rest, options.trainSamples ?? rest));
  return { train, validation };
}

/**
 * Reads the training (and validation tail) and eval data of `options`: labels present where `settings.alpha` < 1
 * or a baseline needs them, eval samples as wide as training samples. Throws DistillError CALIPER_DISTILL_DATA
 * (or CALIPER_DISTILL_INVALID_OPTIONS for a split that leaves no side) naming the data set.
 */
export async function loadDistillData(options: DistillOptions, settings: TrainingSettings): Promise<DistillData> {
  const warnings: string[] = [];
  const { train, validation } = await splitTraining(options);
  if (settings.alpha < 1 && !train.labels) {
    throw new DistillError(
      'CALIPER_DISTILL_DATA',
      `training data ${train.source} has no labels, but alpha ${settings.alpha} < 1 weighs a hard-label loss; give labelled data or --alpha 1 (teacher only)`,
    );
  }
  if (options.baseline && !train.labels)
    throw new DistillError(
      'CALIPER_DISTILL_DATA',
      `--baseline trains on hard labels, but training data ${train.source} has no labels`,
    );
  const evalData =
    options.eval !== undefined ? await resolveData(options.eval, 'eval', options.evalSamples) : undefined;
  if (evalData && sampleSize(evalData) !== sampleSize(train)) {
    throw new DistillError(
      'CALIPER_DISTILL_DATA',
      `eval data ${evalData.source} has ${sampleSize(evalData)} values per sample, training data ${train.source} has ${sampleSize(train)}`,
    );
  }
  const stopOn = validation ?? evalData;
  if (evalData && !validation)
    warnings.push(
      `early stopping selects epochs on the eval data ${evalData.source}, so its accuracy is slightly optimistic; --validation-split holds out training samples instead`,
    );
  return {
    train,
    ...(validation ? { validation } : {}),
    ...(evalData ? { evalData } : {}),
    ...(stopOn ? { stopOn } : {}),
    warnings,
  };
}

/**
 * Checks that the labels of `data` are class indexes of a teacher with `classes` outputs.
 * Throws DistillError CALIPER_DISTILL_DATA naming the data set and the label range found.
 */
export function checkLabels(data: Dataset, classes: number, purpose: string): void {
  if (!data.labels) return;
  let max = 0;
  let min = 0;
  for (const l of data.labels) {
    if (l > max) max = l;
    if (l < min) min = l;
  }
  if (min < 0 || max >= classes) {
    throw new DistillError(
      'CALIPER_DISTILL_DATA',
      `${purpose} data ${data.source} has labels from ${min} to ${max}, but the teacher's output has ${classes} classes (expected labels 0 to ${classes - 1})`,
    );
  }
}
