import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { DistillError } from '../optimize/distill/distill-error.ts';
import { DEFAULT_EPOCHS, DEFAULT_IMAGE_SHIFT } from '../optimize/distill/distill-options.ts';
import type { DistillProgress } from '../optimize/distill/distiller.ts';
import { parseIntegerOption, parseNumberInRangeOption, parsePositiveNumberOption } from './options.ts';

interface DistillCliOptions {
  teacher?: string;
  model?: string;
  label?: string;
  register?: string;
  registry?: string;
  train: string;
  eval?: string;
  student: string;
  output: string;
  temperature: number;
  alpha: number;
  epochs: number;
  batchSize: number;
  lr: number;
  patience?: number;
  seed: number;
  seeds: number;
  augmentShift?: number;
  trainSamples?: number;
  evalSamples?: number;
  validationSplit?: number;
  baseline?: boolean;
  qat?: boolean;
  latency?: boolean;
  json?: boolean;
}

/** Progress on stderr: a bar per phase, and one line per epoch with loss and eval accuracy. */
function terminalProgress(): DistillProgress & { stop(): void } {
  const bar = new SingleBar({
    format: '{phase} [{bar}] {value}/{total} {detail}',
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: true,
  });
  let phase = '';
  let active = false;
  const stop = () => {
    if (active) bar.stop();
    active = false;
  };
  const start = (total: number, detail = '') => {
    stop();
    bar.start(total, 0, { phase, detail });
    active = true;
  };
  return {
    stop,
    onPhase(name) {
      stop();
      phase = name;
      if (name === 'evaluate') process.stderr.write('evaluating teacher and student with ONNX Runtime…\n');
    },
    onTeacherLogits(done, total) {
      if (!active) start(total);
      bar.update(done);
    },
    onStep(epoch, step, steps, loss) {
      if (!active || step === 1) start(steps, '');
      if (step % 10 === 0 || step === steps)
        bar.update(step, { phase: `${phase} epoch ${epoch}`, detail: `loss ${loss.toFixed(4)}` });
    },
    onEpoch(result) {
      stop();
      const scores = [
        result.evalAccuracy !== undefined ? `eval accuracy ${(result.evalAccuracy * 100).toFixed(2)}%` : '',
        result.evalAgreement !== undefined ? `agreement ${(result.evalAgreement * 100).toFixed(2)}%` : '',
      ]
        .filter(Boolean)
        .join(', ');
      process.stderr.write(
        `${phase} epoch ${result.epoch}: loss ${result.loss.toFixed(4)}${scores ? `, ${scores}` : ''} (${result.seconds.toFixed(1)} s)\n`,
      );
    },
  };
}

/** `caliper distill --teacher T.onnx --train DATA --student mlp:256,128 -o S.onnx ...` */
export function registerDistillCommand(program: Command): void {
  program
    .command('distill')
    .description(
      'Distil a teacher ONNX classifier into a smaller student (MLP or small CNN) trained with TensorFlow.js, exported to ONNX, and report accuracy, size and latency side by side',
    )
    .option(
      '--teacher <model>',
      'teacher ONNX model with a logits (or softmax) output [N, C], or one probability [N, 1]',
    )
    .option(
      '--model <dir|uri>',
      'the teacher as a model folder or registry URI: data files of request rows go through its model.yaml preprocess',
    )
    .option('--label <column>', 'the label column of request-row data (a class name or index)')
    .option(
      '--register <name>',
      "register the student as a new version of NAME with the teacher's model.yaml and the report as metrics (needs --model)",
    )
    .option('--registry <dir>', 'registry home for models:/ URIs and --register (default $CALIPER_HOME or ~/.caliper)')
    .requiredOption(
      '--train <data>',
      'training data: request rows (.csv, .parquet, .jsonl) with --model, or tensors: fashion-mnist:SPLIT, IDX file/dir, .parquet, .csv or .pb',
    )
    .option('--eval <data>', 'evaluation data: the report, and early stopping without --validation-split')
    .requiredOption('--student <spec>', 'mlp:W1,W2,… or cnn:C1,C2,…[/W1,…] (e.g. mlp:256,128, cnn:8,16/64)')
    .requiredOption('-o, --output <path>', 'where to write the student ONNX model')
    .option('--temperature <t>', 'softening temperature T', parsePositiveNumberOption('--temperature'), 1)
    .option(
      '--alpha <a>',
      'weight of the teacher term (1 − alpha weighs the hard labels)',
      parseNumberInRangeOption('--alpha', 0, 1),
      0.5,
    )
    .option(
      '--epochs <n>',
      'training epochs (the learning rate follows a cosine over them)',
      parseIntegerOption('--epochs', 1),
      DEFAULT_EPOCHS,
    )
    .option('--batch-size <n>', 'training batch size', parseIntegerOption('--batch-size', 1), 128)
    .option('--lr <x>', 'Adam learning rate (cosine-decayed over the epochs)', parsePositiveNumberOption('--lr'), 1e-3)
    .option(
      '--patience <n>',
      'stop after N epochs without improvement on the early-stopping data (default: --epochs, no early stop; the best epoch is kept either way)',
      parseIntegerOption('--patience', 1),
    )
    .option('--seed <n>', 'seed for weight initialisation and shuffling', parseIntegerOption('--seed', 1), 1)
    .option(
      '--seeds <n>',
      'train N students (seeds --seed … --seed+N−1, each with its --baseline) and report mean ± sd; the first is written',
      parseIntegerOption('--seeds', 1),
      1,
    )
    .option(
      '--augment-shift <pixels>',
      `move each training image by a random offset of up to N pixels per axis every epoch; the teacher labels the moved images (the --baseline sees the same ones). Default ${DEFAULT_IMAGE_SHIFT} for images (IDX image files, or a teacher taking [C, H, W] samples), 0 for tables and vectors`,
      parseIntegerOption('--augment-shift', 0),
    )
    .option('--train-samples <n>', 'use only the first N training samples', parseIntegerOption('--train-samples', 1))
    .option('--eval-samples <n>', 'use only the first N evaluation samples', parseIntegerOption('--eval-samples', 1))
    .option(
      '--validation-split <n>',
      'hold out the last N training samples (a fraction when < 1) for early stopping, so --eval only scores',
      parsePositiveNumberOption('--validation-split'),
    )
    .option('--baseline', 'also train the same student on hard labels only, as a reference row')
    .option(
      '--qat',
      'train with fake INT8 quantization, so the student quantizes (caliper quantize --mode dynamic --per-channel) without further loss',
    )
    .option('--no-latency', 'skip the batch 1 / 64 latency comparison')
    .option('--json', 'print the report as JSON')
    .action(async (opts: DistillCliOptions) => {
      if ((opts.teacher === undefined) === (opts.model === undefined)) {
        throw new DistillError(
          'CALIPER_DISTILL_INVALID_OPTIONS',
          opts.teacher === undefined
            ? 'give the teacher: --teacher T.onnx or --model DIR|models:/URI'
            : 'give either --teacher or --model, not both',
        );
      }
      if (opts.register && !opts.model)
        throw new DistillError(
          'CALIPER_DISTILL_INVALID_OPTIONS',
          "--register needs --model DIR|models:/URI: the student is registered with that model's model.yaml",
        );
      // TensorFlow.js, ONNX Runtime and the registry load here, not for --help or other commands.
      const [{ distill }, { OptimizationTarget, registerOptimized }, { distillMetrics, formatDistillReport }] =
        await Promise.all([
          import('../optimize/distill/distiller.ts'),
          import('../optimize/optimization-target.ts'),
          import('../optimize/distill/distill-report.ts'),
        ]);
      const target = opts.model ? await OptimizationTarget.open(opts.model, opts.registry) : undefined;
      const progress = opts.json && !process.stderr.isTTY ? undefined : terminalProgress();
      try {
        const data = async (spec: string, purpose: string, limit?: number) => {
          if (target) return target.data(spec, purpose, opts.label, limit);
          return opts.label ? { path: spec, labelColumn: opts.label } : spec;
        };
        const train = await data(
          opts.train,
          'training',
          opts.validationSplit === undefined ? opts.trainSamples : undefined,
        );
        const evalData = opts.eval ? await data(opts.eval, 'eval', opts.evalSamples) : undefined;
        const { report } = await distill({
          teacher: target ? target.source.modelPath : opts.teacher!,
          train,
          ...(evalData ? { eval: evalData } : {}),
          student: opts.student,
          output: opts.output,
          temperature: opts.temperature,
          alpha: opts.alpha,
          epochs: opts.epochs,
          batchSize: opts.batchSize,
          learningRate: opts.lr,
          ...(opts.patience !== undefined ? { patience: opts.patience } : {}),
          seed: opts.seed,
          seeds: opts.seeds,
          ...(opts.augmentShift !== undefined ? { augmentShift: opts.augmentShift } : {}),
          ...(opts.trainSamples ? { trainSamples: opts.trainSamples } : {}),
          ...(opts.evalSamples ? { evalSamples: opts.evalSamples } : {}),
          ...(opts.validationSplit !== undefined ? { validationSplit: opts.validationSplit } : {}),
          baseline: opts.baseline ?? false,
          qat: opts.qat ?? false,
          ...(opts.latency === false ? { latencyBatchSizes: [] } : {}),
          ...(progress ? { progress } : {}),
        });
        progress?.stop();
        const registered = opts.register
          ? await registerOptimized({
              file: opts.output,
              name: opts.register,
              source: target!.source,
              mode: 'distill',
              metrics: distillMetrics(report),
              description: `student ${report.student} distilled from ${target!.source.from}`,
              ...(opts.registry ? { registry: opts.registry } : {}),
            })
          : undefined;
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify({ teacherModel: opts.teacher ?? opts.model, output: opts.output, ...report, ...(registered ? { registered: { name: registered.name, version: registered.version } } : {}) }, null, 2)}\n`,
          );
        } else {
          process.stdout.write(`${formatDistillReport(report)}\nwrote ${opts.output}\n`);
          if (registered)
            process.stdout.write(
              `registered models:/${registered.name}/${registered.version} (tags optimized_from=${registered.tags.optimized_from}, mode=distill)\n`,
            );
        }
      } finally {
        progress?.stop();
        await target?.close();
      }
    });
}
