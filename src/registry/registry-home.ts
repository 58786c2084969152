import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Where the registry lives: --registry DIR, else $CALIPER_HOME, else ~/.caliper. */
export function registryHome(option?: string): string {
  if (option) return resolve(option);
  const env = process.env.CALIPER_HOME;
  if (env) return resolve(env);
  return join(homedir(), '.caliper');
}
