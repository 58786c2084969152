// The modules `npm run test:mutation` mutates, each with the test files that exercise it (only those run against
// its mutants, so a module's run takes minutes). Shared by stryker.config.mjs and scripts/mutation.mjs.

const PRE_POSTPROCESS_TESTS = [
  'test/pipeline/transforms.test.ts',
  'test/pipeline/pre-postprocess-behaviour.test.ts',
  'test/pipeline/exact-integers-behaviour.test.ts',
  'test/pipeline/tensor-edges-behaviour.test.ts',
  'test/pipeline/preprocess-tensors-behaviour.test.ts',
];

/**
 * `testTimeoutMs`: a per-test limit for the module's run, below StrykerJS's own timeout. A mutant that stops a wake-up
 * leaves a test waiting forever; StrykerJS would then kill and restart its test process (≈ 20 s a mutant on two shared
 * cores, half of the batcher's mutants), where a test that fails at the limit counts the mutant killed at once.
 * @type {Record<string, { mutate: string[], testFiles: string[], testTimeoutMs?: number }>}
 */
export const MUTATION_MODULES = {
  auth: {
    mutate: ['src/server/auth.ts'],
    testFiles: ['test/server/auth-behaviour.test.ts'],
  },
  // Deadline and priority of every request (/predict, v2 REST, gRPC): admit() and the hints it reads.
  admission: {
    mutate: ['src/pipeline/admission.ts', 'src/protocol/triton-priority.ts', 'src/server/http-admission.ts'],
    testFiles: ['test/pipeline/admission-behaviour.test.ts'],
  },
  batcher: {
    mutate: [
      'src/scheduler/dynamic-batcher.ts',
      'src/scheduler/job-queue.ts',
      'src/scheduler/queue-policy.ts',
      'src/scheduler/arrival-rate.ts',
    ],
    testFiles: [
      'test/scheduler/arrival-rate.test.ts',
      'test/scheduler/dynamic-batcher-arrival-rate.test.ts',
      'test/scheduler/dynamic-batcher.test.ts',
      'test/scheduler/dynamic-batcher-behaviour.test.ts',
      'test/scheduler/dynamic-batcher-queue-behaviour.test.ts',
      // Deadlines on both schedulers (batching on and off share queue-policy.ts's DeadlineTimer).
      'test/scheduler/deadline-timer-behaviour.test.ts',
    ],
    // Each of these tests takes well under a second; a hung one fails at 3 s instead of waiting for StrykerJS.
    testTimeoutMs: 3_000,
  },
  'request-schema': {
    mutate: ['src/pipeline/request-schema.ts'],
    testFiles: ['test/pipeline/transforms.test.ts', 'test/pipeline/request-schema-behaviour.test.ts'],
  },
  // Preprocess and postprocess are measured as two modules (same tests), so they can run side by side.
  preprocess: {
    mutate: ['src/pipeline/preprocess.ts'],
    testFiles: PRE_POSTPROCESS_TESTS,
  },
  postprocess: {
    mutate: ['src/pipeline/postprocess.ts'],
    testFiles: PRE_POSTPROCESS_TESTS,
  },
  registry: {
    mutate: ['src/registry/model-registry.ts'],
    // The SQLite registry, in temporary folders. model-registry-postgres.test.ts runs the same contract on PostgreSQL
    // in `npm test`; here the private PostgreSQL server it starts would be started again for every mutant.
    testFiles: [
      'test/registry/model-registry.test.ts',
      'test/registry/model-registry-behaviour.test.ts',
      'test/registry/model-registry-serving.test.ts',
    ],
  },
  'cache-key': {
    mutate: ['src/cache/answer-fingerprint.ts'],
    // answer-cache-key.test.ts (real servers sharing a Redis cache) is left out: it runs in `npm test`, and under load
    // its servers outlast Stryker's timeout, which would count as killing every mutant it reaches.
    testFiles: ['test/cache/answer-fingerprint.test.ts'],
  },
  'batch-scorer': {
    mutate: ['src/batch/chunk-scorer.ts'],
    // error-policies.test.ts and batch-alignment.test.ts (whole batch jobs through DuckDB) reach the same code and run in
    // `npm test`; under load their jobs outlast Stryker's timeout, which would count as killing the mutants they reach.
    testFiles: ['test/batch/chunk-scorer.test.ts'],
  },
};
