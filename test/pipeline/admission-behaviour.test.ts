import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { CaliperError } from '../../src/errors.ts';
import {
  type AdmissionHints,
  type AdmittedVersion,
  admit,
  type InferenceOptions,
} from '../../src/pipeline/admission.ts';
import { priorityFromTriton } from '../../src/protocol/triton-priority.ts';
import { httpAdmissionHints } from '../../src/server/http-admission.ts';

/**
 * Admission as a client meets it: the deadline a request gets from x-caliper-timeout-ms, Triton's `timeout` parameter
 * (microseconds) and the transport's own deadline, never later than the model's batching.timeout_ms; the priority level
 * from x-caliper-priority (0 highest) or Triton's `priority` (0 the default, 1 the highest); and the 400 that names the
 * header or parameter at fault. The REST and gRPC servers carrying these hints are tested in test/server (latency,
 * grpc, triton-clients); here each rule is pinned on its own, fast enough to run against every mutant.
 */

/** A served version with `timeoutMs` of batching timeout and `levels` priority levels. */
const model = (timeoutMs = 1000, levels = 3): AdmittedVersion => ({
  name: 'fraud',
  config: { batching: { timeoutMs, priorityLevels: levels } },
});

/** admit(), with the milliseconds from now to the deadline it set (bounded by the clock read before and after). */
function admitted(version: AdmittedVersion, hints: AdmissionHints) {
  const before = performance.now();
  const options = admit(version, hints);
  const after = performance.now();
  const deadline = options.deadline as number;
  return { options, earliest: deadline - after, latest: deadline - before };
}

/** The milliseconds admit() gives the request: asserts the deadline is `ms` from the call (within its duration). */
function expectTimeout(version: AdmittedVersion, hints: AdmissionHints, ms: number): void {
  const { earliest, latest } = admitted(version, hints);
  expect(latest).toBeGreaterThanOrEqual(ms);
  expect(earliest).toBeLessThanOrEqual(ms);
}

/** The 400 admit() answers with, as `CODE (status): message`. */
function refusal(version: AdmittedVersion, hints: AdmissionHints): string {
  try {
    admit(version, hints);
  } catch (error) {
    expect(error).toBeInstanceOf(CaliperError);
    const e = error as CaliperError;
    return `${e.code} (${e.httpStatus}): ${e.message}`;
  }
  throw new Error('expected admit() to refuse the request');
}

describe('deadline', () => {
  it("gives a request that asks for nothing the model's batching.timeout_ms", () => {
    expectTimeout(model(750), {}, 750);
    expectTimeout(model(20), {}, 20);
  });

  it('takes x-caliper-timeout-ms when it is shorter than the model timeout, as a header string or a number', () => {
    expectTimeout(model(1000), { timeoutMs: '50' }, 50);
    expectTimeout(model(1000), { timeoutMs: 50 }, 50);
    expectTimeout(model(1000), { timeoutMs: '2.5' }, 2.5);
  });

  it('never lets x-caliper-timeout-ms extend the model timeout', () => {
    expectTimeout(model(100), { timeoutMs: '999999' }, 100);
  });

  it('refuses a timeout header that is not a positive finite number, naming the header and echoing the value', () => {
    for (const bad of ['soon', '0', '-5', 'Infinity', '', 'NaN', '1e400']) {
      expect(refusal(model(), { timeoutMs: bad })).toBe(
        `CALIPER_INVALID_INPUT (400): x-caliper-timeout-ms: expected a positive number of milliseconds, got "${bad}"`,
      );
    }
    expect(refusal(model(), { timeoutMs: 0 })).toContain('x-caliper-timeout-ms');
  });

  it("reads Triton's timeout parameter in microseconds, capped by the model timeout", () => {
    expectTimeout(model(1000), { tritonTimeoutUs: 20_000 }, 20);
    expectTimeout(model(1000), { tritonTimeoutUs: 500 }, 0.5);
    expectTimeout(model(100), { tritonTimeoutUs: 5_000_000 }, 100);
  });

  it('reads a Triton timeout of 0 as no timeout of its own: the model timeout applies', () => {
    expectTimeout(model(600), { tritonTimeoutUs: 0 }, 600);
    expectTimeout(model(600), { tritonTimeoutUs: 0, timeoutMs: '30' }, 30);
  });

  it('refuses a Triton timeout that is negative or not a finite number, naming parameters.timeout', () => {
    for (const [bad, shown] of [
      ['1000', '"1000"'],
      [-1, '-1'],
      [-0.5, '-0.5'],
      [Number.POSITIVE_INFINITY, 'null'],
      [Number.NaN, 'null'],
      [true, 'true'],
    ] as const) {
      expect(refusal(model(), { tritonTimeoutUs: bad })).toBe(
        `CALIPER_INVALID_INPUT (400): parameters.timeout: expected 0 (no timeout) or a positive number of microseconds, got ${shown}`,
      );
    }
  });

  it("keeps to the transport's own deadline (a gRPC call deadline) when it is the tightest", () => {
    expectTimeout(model(1000), { transportTimeoutMs: 30 }, 30);
    expectTimeout(model(10), { transportTimeoutMs: 30 }, 10);
  });

  it('gives a request whose transport deadline has already passed a deadline of now, never one in the past', () => {
    const { earliest, latest } = admitted(model(1000), { transportTimeoutMs: -50 });
    expect(latest).toBeGreaterThan(0);
    expect(earliest).toBeLessThanOrEqual(0.001);
    const zero = admitted(model(1000), { transportTimeoutMs: 0 });
    expect(zero.latest).toBeGreaterThan(0);
    expect(zero.earliest).toBeLessThanOrEqual(0.001);
  });

  it('takes the tightest of every timeout asked for, whichever carries it', () => {
    expectTimeout(model(1000), { timeoutMs: '40', tritonTimeoutUs: 60_000, transportTimeoutMs: 80 }, 40);
    expectTimeout(model(1000), { timeoutMs: '90', tritonTimeoutUs: 30_000, transportTimeoutMs: 80 }, 30);
    expectTimeout(model(1000), { timeoutMs: '90', tritonTimeoutUs: 60_000, transportTimeoutMs: 20 }, 20);
    expectTimeout(model(15), { timeoutMs: '90', tritonTimeoutUs: 60_000, transportTimeoutMs: 80 }, 15);
  });
});

describe('priority', () => {
  it('sets no priority when none is asked for, so the request gets the default level', () => {
    const { options } = admitted(model(), {});
    expect(Object.keys(options)).toEqual(['deadline']);
  });

  it("takes x-caliper-priority as Caliper's level, 0 the highest, up to priority_levels - 1", () => {
    expect(admit(model(1000, 3), { priority: '0' }).priority).toBe(0);
    expect(admit(model(1000, 3), { priority: '2' }).priority).toBe(2);
    expect(admit(model(1000, 3), { priority: 1 }).priority).toBe(1);
  });

  it('refuses a level outside the model levels or not an integer, naming the header, the range and the setting', () => {
    for (const bad of ['3', '-1', '1.5', 'high', 'Infinity']) {
      expect(refusal(model(1000, 3), { priority: bad })).toBe(
        `CALIPER_INVALID_INPUT (400): x-caliper-priority: expected an integer from 0 (highest) to 2 (batching.priority_levels: 3), got "${bad}"`,
      );
    }
  });

  it('tells the client of a model with one level how to enable priorities', () => {
    expect(refusal(model(1000, 1), { priority: '1' })).toBe(
      'CALIPER_INVALID_INPUT (400): x-caliper-priority: expected an integer from 0 to 0, got "1": model fraud has one priority level; set batching.priority_levels in its model.yaml to use priorities',
    );
    expect(admit(model(1000, 1), { priority: '0' }).priority).toBe(0);
  });

  it("maps Triton's priority (1 the highest) to Caliper's levels (0 the highest)", () => {
    expect(admit(model(1000, 3), { tritonPriority: 1 }).priority).toBe(0);
    expect(admit(model(1000, 3), { tritonPriority: 2 }).priority).toBe(1);
    expect(admit(model(1000, 3), { tritonPriority: 3 }).priority).toBe(2);
  });

  it("treats Triton's priority 0 and a level past the model's levels as the default: no priority set", () => {
    for (const p of [0, 4, 1000]) {
      const options: InferenceOptions = admit(model(1000, 3), { tritonPriority: p });
      expect(options.priority).toBeUndefined();
      expect('priority' in options).toBe(false);
    }
  });

  it("lets x-caliper-priority win over Triton's priority, and still refuses a malformed Triton priority", () => {
    expect(admit(model(1000, 3), { priority: '2', tritonPriority: 1 }).priority).toBe(2);
    expect(admit(model(1000, 3), { priority: '0', tritonPriority: 3 }).priority).toBe(0);
    expect(refusal(model(1000, 3), { priority: '0', tritonPriority: -1 })).toBe(
      "CALIPER_INVALID_INPUT (400): parameters.priority: expected an unsigned integer (Triton's priority: 0 the model's default, 1 the highest, larger lower), got number -1",
    );
  });

  it('refuses a Triton priority that is not an unsigned safe integer, naming it and showing what was sent', () => {
    for (const [bad, shown] of [
      [-1, 'number -1'],
      [1.5, 'number 1.5'],
      ['1', '"1"'],
      [2 ** 53, `number ${2 ** 53}`],
      [null, 'null'],
    ] as const) {
      expect(() => priorityFromTriton('parameters.priority', bad, 3)).toThrow(
        `parameters.priority: expected an unsigned integer (Triton's priority: 0 the model's default, 1 the highest, larger lower), got ${shown}`,
      );
    }
    expect(() => priorityFromTriton('priority', 'x', 3)).toThrow(/^priority: expected/);
  });
});

describe('client gone', () => {
  it('passes on how to tell that the client left, and sets nothing when the transport cannot tell', () => {
    let gone = false;
    const clientGone = () => gone;
    const options = admit(model(), { clientGone });
    expect(options.clientGone).toBe(clientGone);
    gone = true;
    expect(options.clientGone?.()).toBe(true);
    expect('clientGone' in admit(model(), {})).toBe(false);
  });
});

describe('HTTP hints', () => {
  /** A real fastify server that answers each request with the hints read from it, and whether its client is gone. */
  async function hintsOf(headers: Record<string, string>) {
    const app = Fastify();
    app.get('/hints', async (request) => {
      const hints = httpAdmissionHints(request);
      return { ...hints, clientGone: hints.clientGone?.() };
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const { port } = app.server.address() as { port: number };
      const response = await fetch(`http://127.0.0.1:${port}/hints`, { headers });
      return (await response.json()) as Record<string, unknown>;
    } finally {
      await app.close();
    }
  }

  it('reads x-caliper-timeout-ms and x-caliper-priority as sent, with a client still connected', async () => {
    expect(await hintsOf({ 'x-caliper-timeout-ms': '25', 'x-caliper-priority': '1' })).toEqual({
      timeoutMs: '25',
      priority: '1',
      clientGone: false,
    });
  });

  it('takes the shorter x-timeout-ms when x-caliper-timeout-ms is absent, and prefers x-caliper-timeout-ms', async () => {
    expect(await hintsOf({ 'x-timeout-ms': '40' })).toEqual({ timeoutMs: '40', clientGone: false });
    expect(await hintsOf({ 'x-timeout-ms': '40', 'x-caliper-timeout-ms': '10' })).toEqual({
      timeoutMs: '10',
      clientGone: false,
    });
  });

  it('sets no timeout or priority when the request sends none', async () => {
    expect(await hintsOf({})).toEqual({ clientGone: false });
  });

  it('tells that the client left once its connection is closed', async () => {
    const app = Fastify();
    let seen: (() => boolean) | undefined;
    const closed = new Promise<void>((resolve) => {
      // Never answers: the client gives up first.
      app.get('/slow', (request, _reply) => {
        seen = httpAdmissionHints(request).clientGone;
        request.raw.socket.on('close', () => resolve());
      });
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const { port } = app.server.address() as { port: number };
      const abort = new AbortController();
      const request = fetch(`http://127.0.0.1:${port}/slow`, { signal: abort.signal }).catch(() => undefined);
      while (seen === undefined) await new Promise((r) => setTimeout(r, 5));
      expect(seen()).toBe(false);
      abort.abort();
      await closed;
      await request;
      expect(seen?.()).toBe(true);
    } finally {
      await app.close();
    }
  });
});
