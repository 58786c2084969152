import type { Command } from 'commander';
import type { EvaluationTask } from '../optimize/evaluate/output-comparison.ts';
import type { CalibrationMethod } from '../optimize/quantize/calibration.ts';
import { QuantizeError } from '../optimize/quantize/quantize-error.ts';
import type { DataSource, QuantizeMode } from '../optimize/quantize/quantizer.ts';
import { parseChoiceOption, parseIntegerOption } from './options.ts';

interface QuantizeCliOptions {
  output: string;
  mode: string;
  model?: string;
  perChannel?: boolean;
  reduceRange?: boolean;
  calibration?: string;
  calibrationSamples?: number;
  method?: string;
  percentile?: string;
  exclude?: string[];
  blockOps?: string[];
  minConvReduction?: number;
  eval?: string;
  evalSamples?: number;
  label?: string;
  task?: EvaluationTask;
  maxDrop: number;
  force?: boolean;
  register?: string;
  externalData?: boolean;
  latency?: boolean;
  json?: boolean;
  registry?: string;
}

const list = (value: string, previous: string[] = []) => [
  ...previous,
  ...value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

function nonNegative(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new QuantizeError('CALIPER_QUANTIZE_INVALID_OPTIONS', `--max-drop: expected a number >= 0, got "${value}"`);
  return n;
}

/** `caliper quantize IN.onnx|--model DIR|URI -o OUT.onnx --mode dynamic|static|fp16 ...` */
export function registerQuantizeCommand(program: Command): void {
  program
    .command('quantize')
    .description(
      'Quantize an ONNX model to INT8 (dynamic or static) or convert it to float16, report size, accuracy and latency, and write it only when it keeps its accuracy and is no larger or slower',
    )
    .argument(
      '[input]',
      'float32 ONNX model file, or a registry URI (models:/NAME/VERSION|STAGE|latest, models:/NAME@ALIAS)',
    )
    .requiredOption('-o, --output <path>', 'where to write the converted model')
    .requiredOption('--mode <mode>', 'dynamic | static | fp16')
    .option(
      '--model <dir|uri>',
      'a model folder (model.yaml + versions) or registry URI: data files of request rows go through its model.yaml preprocess',
    )
    .option('--per-channel', 'one weight scale per output channel')
    .option('--reduce-range', '7-bit weights for CPUs without VNNI')
    .option(
      '--calibration <data>',
      'calibration data for static mode: request rows (.csv, .parquet, .jsonl) with --model, or tensors: fashion-mnist:SPLIT, IDX file/dir, .parquet, .csv or .pb',
    )
    .option(
      '--calibration-samples <n>',
      'calibration samples to use',
      parseIntegerOption('--calibration-samples', 1),
      512,
    )
    .option('--method <method>', 'calibration method: minmax | percentile | entropy', 'minmax')
    .option('--percentile <p>', 'percentile kept by --method percentile', '99.999')
    .option('--exclude <names>', 'node names or op types to keep in float (comma-separated, repeatable)', list)
    .option(
      '--min-conv-reduction <n>',
      'static: keep convolutions with fewer products per output value (in channels × kernel area) in float (default 16; 0 quantizes all)',
      parseIntegerOption('--min-conv-reduction', 0),
    )
    .option('--block-ops <ops>', 'fp16: op types kept in float32 (comma-separated; replaces the default list)', list)
    .option(
      '--eval <data>',
      'evaluation data (same forms as --calibration): output difference, plus accuracy or MAE/RMSE when it has labels',
    )
    .option('--eval-samples <n>', 'evaluation samples to use (default all)', parseIntegerOption('--eval-samples', 1))
    .option(
      '--label <column>',
      'the label column of request-row data: a class (name or index) or a number (regression)',
    )
    .option(
      '--task <task>',
      'how labels score the first output: auto | classification | regression',
      parseChoiceOption('--task', ['auto', 'classification', 'regression'] as const),
      'auto',
    )
    .option(
      '--max-drop <pt>',
      'most accuracy points (or % more MAE for regression) the model may lose; past it, or larger or slower, it is not written',
      nonNegative,
      1.0,
    )
    .option('--force', 'write the model even when the guard fails')
    .option(
      '--register <name>',
      'register the written model as a new version of NAME, with the report as metrics (needs --model)',
    )
    .option('--external-data', 'store initializers in OUTPUT.data next to the model')
    .option('--no-latency', 'skip the batch 1 / 64 latency comparison')
    .option('--json', 'print the report as JSON')
    .option('--registry <dir>', 'registry home for models:/ URIs and --register (default $CALIPER_HOME or ~/.caliper)')
    .action(async (input: string | undefined, opts: QuantizeCliOptions) => {
      if ((input === undefined) === (opts.model === undefined)) {
        throw new QuantizeError(
          'CALIPER_QUANTIZE_INVALID_OPTIONS',
          input === undefined
            ? 'give the model to quantize: IN.onnx, a models:/ URI, or --model DIR|URI'
            : 'give either IN.onnx or --model, not both',
        );
      }
      if (opts.register && !opts.model)
        throw new QuantizeError(
          'CALIPER_QUANTIZE_INVALID_OPTIONS',
          "--register needs --model DIR|models:/URI: the new version is registered with that model's model.yaml",
        );
      // The quantizer, ONNX Runtime and the registry load here, not for --help or other commands.
      const [{ quantize }, { OptimizationTarget, registerOptimized }, { formatQuantizeReport, quantizeMetrics }, uris] =
        await Promise.all([
          import('../optimize/quantize/quantizer.ts'),
          import('../optimize/optimization-target.ts'),
          import('../optimize/evaluate/quantize-report.ts'),
          import('../registry/uri-resolver.ts'),
        ]);
      const target = opts.model ? await OptimizationTarget.open(opts.model, opts.registry) : undefined;
      try {
        const modelFile = target
          ? target.source.modelPath
          : input!.startsWith('models:/')
            ? (await uris.resolveModelUri(input!, opts.registry)).modelPath
            : input!;
        const data = async (
          spec: string | undefined,
          purpose: string,
          limit?: number,
        ): Promise<DataSource | undefined> => {
          if (spec === undefined) return undefined;
          if (target) return target.data(spec, purpose, opts.label, limit);
          return opts.label ? { path: spec, labelColumn: opts.label } : spec;
        };
        const calibration = await data(opts.calibration, 'calibration', opts.calibrationSamples);
        const evalData = await data(opts.eval, 'eval', opts.evalSamples);
        const report = (
          await quantize(modelFile, {
            mode: opts.mode as QuantizeMode,
            output: opts.output,
            perChannel: opts.perChannel ?? false,
            reduceRange: opts.reduceRange ?? false,
            ...(calibration ? { calibration } : {}),
            ...(opts.calibrationSamples ? { calibrationSamples: opts.calibrationSamples } : {}),
            method: (opts.method ?? 'minmax') as CalibrationMethod,
            ...(opts.percentile ? { percentile: Number(opts.percentile) } : {}),
            ...(opts.exclude ? { exclude: opts.exclude } : {}),
            ...(opts.blockOps ? { blockOps: opts.blockOps } : {}),
            ...(opts.minConvReduction !== undefined ? { minConvReduction: opts.minConvReduction } : {}),
            ...(evalData ? { eval: evalData } : {}),
            ...(opts.evalSamples ? { evalSamples: opts.evalSamples } : {}),
            ...(opts.task ? { task: opts.task } : {}),
            maxDrop: opts.maxDrop,
            force: opts.force ?? false,
            externalData: opts.externalData ?? false,
            ...(opts.latency === false ? { latencyBatchSizes: [] } : {}),
          })
        ).report;
        const registered =
          opts.register && report.guard.written
            ? await registerOptimized({
                file: opts.output,
                name: opts.register,
                source: target!.source,
                mode: report.mode,
                metrics: quantizeMetrics(report),
                ...(opts.registry ? { registry: opts.registry } : {}),
              })
            : undefined;
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify({ input: input ?? opts.model, output: opts.output, ...report, ...(registered ? { registered: { name: registered.name, version: registered.version } } : {}) }, null, 2)}\n`,
          );
        } else {
          for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`);
          process.stdout.write(`${formatQuantizeReport({ ...report, warnings: [] })}\n`);
          if (report.guard.written) process.stdout.write(`wrote ${opts.output}\n`);
          if (registered)
            process.stdout.write(
              `registered models:/${registered.name}/${registered.version} (tags optimized_from=${registered.tags.optimized_from}, mode=${registered.tags.mode})\n`,
            );
        }
        if (!report.guard.written) {
          throw new QuantizeError(
            'CALIPER_QUANTIZE_GUARD',
            `${opts.output} not written: ${report.guard.reasons.join('; ')} (pass --force to write it anyway)`,
          );
        }
      } finally {
        await target?.close();
      }
    });
}
