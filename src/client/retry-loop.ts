import { InferenceClientError } from './client-error.ts';
import type { RetryPolicy } from './infer-types.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable error, runs out of attempts or reaches the
 * deadline. Waits grow exponentially with full jitter; a server's Retry-After is honoured up to maxDelayMs.
 * `attempt` receives the milliseconds left before the deadline.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  timeoutMs: number,
  attempt: (remainingMs: number) => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let backoff = policy.initialDelayMs;
  for (let n = 1; ; n++) {
    const remaining = deadline - Date.now();
    if (remaining <= 0)
      throw new InferenceClientError(`deadline of ${timeoutMs} ms exceeded`, {
        code: 'CALIPER_DEADLINE_EXCEEDED',
        retryable: false,
      });
    try {
      return await attempt(remaining);
    } catch (error) {
      if (!(error instanceof InferenceClientError) || !error.retryable || n >= policy.maxAttempts) throw error;
      const jittered = Math.random() * backoff;
      const asked = error.retryAfterSeconds !== undefined ? error.retryAfterSeconds * 1000 : 0;
      const wait = Math.min(Math.max(jittered, asked), policy.maxDelayMs, deadline - Date.now());
      if (wait <= 0) throw error;
      await sleep(wait);
      backoff = Math.min(backoff * policy.multiplier, policy.maxDelayMs);
    }
  }
}
