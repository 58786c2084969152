/**
 * The young generation (V8's new space) a worker keeps at least, in MB per semi-space: V8's default maximum on 64-bit
 * Node 20. V8 starts the new space at 1 MB, shrinks it again after an idle spell and grows it only as survivors pile
 * up; a worker that sees 1/N of the requests stays small longer, so it scavenges about twice as often per request as
 * one process (bench/workers.ts's GC columns). Costs up to 2 × 16 MB resident per worker once used.
 */
export const WORKER_MIN_SEMI_SPACE_MB = 16;

/** A V8 young-generation size option (either spelling of the flag's words: V8 accepts `-` and `_`). */
const SEMI_SPACE_OPTION = /^--(min|max)[-_]semi[-_]space[-_]size(=|$)/;

/**
 * The Node.js options a worker of `caliper serve --workers N` starts with: the primary's own (`execArgv`, as
 * node:cluster would pass them) plus `--min-semi-space-size=16`, unless the user already chose a young-generation size
 * (`--min-semi-space-size` or `--max-semi-space-size`, on node's command line or in NODE_OPTIONS), which is then left
 * as given. Returns a new array; `execArgv` is not changed.
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions = ''): string[] {
  const chosen = [...execArgv, ...nodeOptions.split(/\s+/)].some((option) => SEMI_SPACE_OPTION.test(option));
  return chosen ? [...execArgv] : [...execArgv, `--min-semi-space-size=${WORKER_MIN_SEMI_SPACE_MB}`];
}
