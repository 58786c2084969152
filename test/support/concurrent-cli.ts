// Runs several `caliper models …` commands at once in this process (each opens its own registry connection),
// as a team's scripts on one machine would; prints one JSON line: [{ args, ok, error? }] in the order given.
// Usage: node --import tsx test/support/concurrent-cli.ts '[["register", …], ["promote", …]]'
import { Command } from 'commander';
import { registerModelsCommand } from '../../src/cli/models.ts';

const commands = JSON.parse(process.argv[2] ?? '[]') as string[][];
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (() => true) as typeof process.stdout.write;
const results = await Promise.all(
  commands.map(async (args) => {
    const program = new Command()
      .exitOverride()
      .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    registerModelsCommand(program);
    try {
      await program.parseAsync(['node', 'caliper', 'models', ...args]);
      return { args, ok: true };
    } catch (error) {
      return { args, ok: false, error: (error as Error).message };
    }
  }),
);
write(`${JSON.stringify(results)}\n`);
process.exit(0);
