#!/usr/bin/env node
import nodeModule from 'node:module';
import { Command, CommanderError } from 'commander';
import { CaliperError } from '../errors.ts';
import { disableOrtTelemetryUnlessAsked } from '../runtime/ort-telemetry.ts';

// Node >= 22.1 keeps compiled code of the modules loaded below between runs (start-up time); absent on Node 20.
(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();
// Every command that loads a model (serve, batch, quantize, distill, doctor...): no ORT telemetry unless asked for.
disableOrtTelemetryUnlessAsked();

type Registrar = (program: Command) => void;

/**
 * Each command's module, loaded only when that command runs (or for the full help): the modules pull in
 * heavy dependencies (ONNX Runtime, DuckDB, BullMQ, TensorFlow.js) that other commands do not need.
 */
const COMMANDS: Record<string, () => Promise<Registrar>> = {
  serve: async () => (await import('./serve.ts')).registerServeCommand,
  batch: async () => (await import('./batch.ts')).registerBatchCommand,
  worker: async () => (await import('./worker.ts')).registerWorkerCommand,
  bench: async () => (await import('./bench.ts')).registerBenchCommand,
  tune: async () => (await import('./tune.ts')).registerTuneCommand,
  doctor: async () => (await import('./doctor.ts')).registerDoctorCommand,
  quantize: async () => (await import('./quantize.ts')).registerQuantizeCommand,
  distill: async () => (await import('./distill.ts')).registerDistillCommand,
  models: async () => (await import('./models.ts')).registerModelsCommand,
  features: async () => (await import('./features.ts')).registerFeaturesCommand,
};

const program = new Command();
program
  .name('caliper')
  .description('Caliper: model serving and inference optimization for Node.js')
  .version('0.1.0')
  .exitOverride();

try {
  const requested = process.argv[2];
  const names = requested !== undefined && Object.hasOwn(COMMANDS, requested) ? [requested] : Object.keys(COMMANDS);
  for (const name of names) (await COMMANDS[name]!())(program);
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  const message = error instanceof CaliperError || error instanceof Error ? error.message : String(error);
  process.stderr.write(`caliper: ${message}\n`);
  // The catalogue's exit code (src/errors.ts): 1 for what the caller must fix, 69/70/75/130 for unavailable/internal/retry/interrupted.
  process.exit(error instanceof CaliperError ? error.exitCode : 1);
}
