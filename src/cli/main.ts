import { Command, CommanderError } from 'commander';
import { CaliperError } from '../errors.ts';
import { registerBatchCommand } from './batch.ts';
import { registerBenchCommand } from './bench.ts';
import { registerTuneCommand } from './tune.ts';
import { registerModelsCommand } from './models.ts';
import { registerDistillCommand } from './distill.ts';
import { registerFeaturesCommand } from './features.ts';
import { registerQuantizeCommand } from './quantize.ts';
import { registerServeCommand } from './serve.ts';
import { registerWorkerCommand } from './worker.ts';

const program = new Command();
program
  .name('caliper')
  .description('Caliper: model serving and inference optimization for Node.js')
  .version('0.1.0')
  .showHelpAfterError()
  .exitOverride();

registerServeCommand(program);
registerBatchCommand(program);
registerWorkerCommand(program);
registerBenchCommand(program);
registerTuneCommand(program);
registerQuantizeCommand(program);
registerDistillCommand(program);
registerModelsCommand(program);
registerFeaturesCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  const message = error instanceof CaliperError || error instanceof Error ? error.message : String(error);
  process.stderr.write(`caliper: ${message}\n`);
  process.exit(1);
}
