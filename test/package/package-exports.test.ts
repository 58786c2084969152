import { describe, expect, it } from 'vitest';

/** The package's own name resolves (Node's self-reference through package.json "exports"), as users import it. */
describe('package entry points', () => {
  it("import { quantize, startServing } from 'caliper-serving'", async () => {
    const caliper = await import('caliper-serving');
    expect(typeof caliper.quantize).toBe('function');
    expect(typeof caliper.distill).toBe('function');
    expect(typeof caliper.startServing).toBe('function');
    expect(typeof caliper.readModelConfig).toBe('function');
  });

  it("import { RestInferenceClient, GrpcInferenceClient } from 'caliper-serving/client'", async () => {
    const client = await import('caliper-serving/client');
    expect(typeof client.RestInferenceClient).toBe('function');
    expect(typeof client.GrpcInferenceClient).toBe('function');
  });
});
