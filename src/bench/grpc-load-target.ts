import { GrpcInferenceClient } from '../client/grpc-client.ts';
import { InferenceClientError } from '../client/client-error.ts';
import type { InferInput } from '../client/infer-types.ts';
import { CaliperError } from '../errors.ts';
import { isV2Datatype } from '../protocol/datatypes.ts';
import type { LoadClient, LoadTarget, RequestOutcome } from './load-target.ts';
import type { RequestData } from './request-data.ts';

const SUCCESS: RequestOutcome = Object.freeze({ ok: true, status: 'OK' });

/** host:port from grpc://HOST:PORT (or a bare HOST:PORT). */
export function parseGrpcAddress(url: string): string {
  const address = url.replace(/^grpc:\/\//, '').replace(/\/$/, '');
  if (!/^[^/:]+:\d+$/.test(address) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(address)) {
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--url: expected grpc://HOST:PORT for --protocol grpc (the server's --grpc-port), got "${url}"`,
    );
  }
  return address;
}

function flatten(value: unknown, out: unknown[]): void {
  if (Array.isArray(value)) for (const item of value) flatten(item, out);
  else out.push(value);
}

/** The tensors of one v2 infer request document, as the client sends them (FP32 data as Float32Array, …). */
function inferInputs(document: unknown, where: string): InferInput[] {
  const inputs = (document as { inputs?: unknown }).inputs;
  if (!Array.isArray(inputs))
    throw new CaliperError('CALIPER_INVALID_INPUT', `${where}: expected a v2 infer request with inputs`);
  return inputs.map((raw, i) => {
    const t = raw as { name?: unknown; datatype?: unknown; shape?: unknown; data?: unknown };
    if (typeof t.name !== 'string' || !isV2Datatype(t.datatype) || !Array.isArray(t.shape)) {
      throw new CaliperError('CALIPER_INVALID_INPUT', `${where}: inputs[${i}]: expected {name, datatype, shape, data}`);
    }
    const flat: unknown[] = [];
    flatten(t.data, flat);
    const data =
      t.datatype === 'FP32'
        ? Float32Array.from(flat as number[])
        : t.datatype === 'FP64'
          ? Float64Array.from(flat as number[])
          : (flat as number[] | boolean[] | string[]);
    return { name: t.name, datatype: t.datatype, shape: t.shape as number[], data };
  });
}

/**
 * Load over the Open Inference Protocol's gRPC service (ModelInfer with raw tensor contents): each client is
 * one HTTP/2 channel sending one call at a time, without retries so every failure is counted.
 */
export class GrpcLoadTarget implements LoadTarget {
  readonly description: string;
  private readonly address: string;
  private readonly requests: InferInput[][];
  private next = 0;

  constructor(
    url: string,
    private readonly model: string,
    data: RequestData,
  ) {
    this.address = parseGrpcAddress(url);
    this.description = `ModelInfer grpc://${this.address} ${model}`;
    this.requests = data.documents.map((doc, i) => inferInputs(doc, `${data.source} request ${i + 1}`));
  }

  createClient(): LoadClient {
    const client = new GrpcInferenceClient({ address: this.address, retry: { maxAttempts: 1 } });
    return {
      send: (done) => {
        const inputs = this.requests[this.next]!;
        this.next = this.next + 1 === this.requests.length ? 0 : this.next + 1;
        client.infer(this.model, inputs).then(
          () => done(SUCCESS),
          (error: unknown) =>
            done({
              ok: false,
              status:
                error instanceof InferenceClientError && error.grpcCode !== undefined
                  ? `grpc-${error.grpcCode}`
                  : 'network',
            }),
        );
      },
      close: () => client.close(),
    };
  }
}
