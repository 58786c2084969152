import { describe, expect, it } from 'vitest';

/** The package's own name resolves as users import it (to the sources here: vitest.config.ts aliases it; the built package is packed-install.test.ts). */
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
