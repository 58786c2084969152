import type { Command } from 'commander';
import { formatQuantizeReport } from '../optimize/evaluate/quantize-report.ts';
import type { CalibrationMethod } from '../optimize/quantize/calibration.ts';
import { quantize, type QuantizeMode } from '../optimize/quantize/quantizer.ts';
import { resolveModelUri } from '../registry/uri-resolver.ts';

interface QuantizeCliOptions {
  output: string;
  mode: string;
  perChannel?: boolean;
  reduceRange?: boolean;
  calibration?: string;
  calibrationSamples?: string;
  method?: string;
  percentile?: string;
  exclude?: string[];
  blockOps?: string[];
  eval?: string;
  evalSamples?: string;
  externalData?: boolean;
  latency?: boolean;
  json?: boolean;
  registry?: string;
}

const list = (value: string, previous: string[] = []) => [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];

/** `caliper quantize IN.onnx -o OUT.onnx --mode dynamic|static|fp16 ...` */
export function registerQuantizeCommand(program: Command): void {
  program
    .command('quantize')
    .description('Quantize an ONNX model to INT8 (dynamic or static) or convert it to float16, and report size, accuracy and latency')
    .argument('<input>', 'float32 ONNX model file, or a registry URI (models:/NAME/VERSION|STAGE|latest, models:/NAME@ALIAS)')
    .requiredOption('-o, --output <path>', 'where to write the converted model')
    .requiredOption('--mode <mode>', 'dynamic | static | fp16')
    .option('--per-channel', 'one weight scale per output channel')
    .option('--reduce-range', '7-bit weights for CPUs without VNNI')
    .option('--calibration <data>', 'calibration data for static mode: fashion-mnist:SPLIT, IDX file/dir, .parquet, .csv or .pb')
    .option('--calibration-samples <n>', 'calibration samples to use', '512')
    .option('--method <method>', 'calibration method: minmax | percentile | entropy', 'minmax')
    .option('--percentile <p>', 'percentile kept by --method percentile', '99.999')
    .option('--exclude <names>', 'node names or op types to keep in float (comma-separated, repeatable)', list)
    .option('--block-ops <ops>', 'fp16: op types kept in float32 (comma-separated; replaces the default list)', list)
    .option('--eval <data>', 'evaluation data: output difference, plus accuracy and agreement when it has labels')
    .option('--eval-samples <n>', 'evaluation samples to use (default all)')
    .option('--external-data', 'store initializers in OUTPUT.data next to the model')
    .option('--no-latency', 'skip the batch 1 / 64 latency comparison')
    .option('--json', 'print the report as JSON')
    .option('--registry <dir>', 'registry home for models:/ URIs (default $CALIPER_HOME or ~/.caliper)')
    .action(async (input: string, opts: QuantizeCliOptions) => {
      const modelFile = input.startsWith('models:/') ? (await resolveModelUri(input, opts.registry)).modelPath : input;
      const report = (await quantize(modelFile, {
        mode: opts.mode as QuantizeMode,
        output: opts.output,
        perChannel: opts.perChannel ?? false,
        reduceRange: opts.reduceRange ?? false,
        ...(opts.calibration ? { calibration: opts.calibration } : {}),
        ...(opts.calibrationSamples ? { calibrationSamples: Number(opts.calibrationSamples) } : {}),
        method: (opts.method ?? 'minmax') as CalibrationMethod,
        ...(opts.percentile ? { percentile: Number(opts.percentile) } : {}),
        ...(opts.exclude ? { exclude: opts.exclude } : {}),
        ...(opts.blockOps ? { blockOps: opts.blockOps } : {}),
        ...(opts.eval ? { eval: opts.eval } : {}),
        ...(opts.evalSamples ? { evalSamples: Number(opts.evalSamples) } : {}),
        externalData: opts.externalData ?? false,
        ...(opts.latency === false ? { latencyBatchSizes: [] } : {}),
      })).report;
      if (opts.json) process.stdout.write(`${JSON.stringify({ input, output: opts.output, ...report }, null, 2)}\n`);
      else {
        for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`);
        process.stdout.write(`${formatQuantizeReport({ ...report, warnings: [] })}\nwrote ${opts.output}\n`);
      }
    });
}
