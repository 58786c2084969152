import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { InferenceClientError } from './client-error.ts';
import {
  DEFAULT_RETRY_POLICY,
  type InferenceClient,
  type InferInput,
  type InferOptions,
  type InferOutput,
  type InferResult,
  type ModelMetadata,
  type RetryPolicy,
  type ServerMetadata,
} from './infer-types.ts';
import { withRetries } from './retry-loop.ts';
import { inputBytes, jsonData, outputFromRaw, outputFromValues } from './tensor-codec.ts';
import { parseExactJson, stringifyExactJson } from '../runtime/exact-json.ts';

export interface RestClientOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:8000. */
  url: string;
  /** Default deadline of each call, retries included. */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Send inputs and ask for outputs with the binary tensor extension (default) rather than JSON. */
  binary?: boolean;
  /** Most connections kept open to the server (they are reused, keep-alive). */
  maxSockets?: number;
  /** Sent as X-API-Key when the server asks for API keys. */
  apiKey?: string;
}

interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const NETWORK_RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EAI_AGAIN']);

/** Open Inference Protocol v2 over HTTP/1.1: JSON or the binary tensor extension, keep-alive connections, deadlines, retries on 503. */
export class RestInferenceClient implements InferenceClient {
  private readonly base: URL;
  private readonly agent: HttpAgent;
  private readonly send: typeof httpRequest;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly binary: boolean;
  private readonly apiKey: string | undefined;

  constructor(options: RestClientOptions) {
    this.base = new URL(options.url);
    const secure = this.base.protocol === 'https:';
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 64 };
    this.agent = secure ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
    this.send = secure ? httpsRequest : httpRequest;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.binary = options.binary ?? true;
    this.apiKey = options.apiKey;
  }

  private once(
    method: string,
    path: string,
    remainingMs: number,
    body?: Buffer,
    headers: Record<string, string> = {},
  ): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const url = new URL(path, this.base);
      const request = this.send(
        url,
        {
          method,
          agent: this.agent,
          timeout: remainingMs,
          headers: { ...headers, ...(body ? { 'content-length': String(body.byteLength) } : {}) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
          );
          response.on('error', reject);
        },
      );
      request.on('timeout', () =>
        request.destroy(
          new InferenceClientError(`${method} ${path}: no answer within ${Math.round(remainingMs)} ms`, {
            code: 'CALIPER_DEADLINE_EXCEEDED',
            retryable: false,
          }),
        ),
      );
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (error instanceof InferenceClientError) reject(error);
        else
          reject(
            new InferenceClientError(`${method} ${url.href}: ${error.message}`, {
              code: error.code,
              retryable: NETWORK_RETRYABLE.has(error.code ?? ''),
              cause: error,
            }),
          );
      });
      request.end(body);
    });
  }

  /** One call with retries; non-2xx answers (other than `accept`) become InferenceClientErrors. */
  private async call(
    method: string,
    path: string,
    options: { body?: Buffer; headers?: Record<string, string>; timeoutMs?: number; accept?: number[] } = {},
  ): Promise<HttpAnswer> {
    return withRetries(this.retry, options.timeoutMs ?? this.timeoutMs, async (remaining) => {
      const headers: Record<string, string> = {
        ...options.headers,
        'x-caliper-timeout-ms': String(Math.max(1, Math.floor(remaining))),
      };
      if (this.apiKey !== undefined) headers['x-api-key'] = this.apiKey;
      const answer = await this.once(method, path, remaining, options.body, headers);
      if ((answer.status >= 200 && answer.status < 300) || options.accept?.includes(answer.status)) return answer;
      let message = answer.body.toString('utf8');
      let code: string | undefined;
      try {
        const parsed = JSON.parse(message) as { error?: string; code?: string };
        message = parsed.error ?? message;
        code = parsed.code;
      } catch {
        // not JSON: keep the text
      }
      const retryAfter = Number(answer.headers['retry-after']);
      throw new InferenceClientError(`${method} ${path}: ${answer.status} ${message}`, {
        httpStatus: answer.status,
        code,
        retryable: answer.status === 503,
        ...(Number.isFinite(retryAfter) ? { retryAfterSeconds: retryAfter } : {}),
      });
    });
  }

  private async json<T>(path: string): Promise<T> {
    return JSON.parse((await this.call('GET', path)).body.toString('utf8')) as T;
  }

  private static modelPath(model: string, version?: string | number): string {
    return `/v2/models/${encodeURIComponent(model)}${version === undefined ? '' : `/versions/${encodeURIComponent(String(version))}`}`;
  }

  async serverLive(): Promise<boolean> {
    return (await this.call('GET', '/v2/health/live', { accept: [503] })).status === 200;
  }

  async serverReady(): Promise<boolean> {
    return (await this.call('GET', '/v2/health/ready', { accept: [503] })).status === 200;
  }

  async modelReady(model: string, version?: string | number): Promise<boolean> {
    return (
      (await this.call('GET', `${RestInferenceClient.modelPath(model, version)}/ready`, { accept: [503] })).status ===
      200
    );
  }

  serverMetadata(): Promise<ServerMetadata> {
    return this.json('/v2');
  }

  modelMetadata(model: string, version?: string | number): Promise<ModelMetadata> {
    return this.json(RestInferenceClient.modelPath(model, version));
  }

  async infer(model: string, inputs: InferInput[], options: InferOptions = {}): Promise<InferResult> {
    const head: Record<string, unknown> = options.id !== undefined ? { id: options.id } : {};
    const headers: Record<string, string> = {};
    if (options.priority !== undefined) headers['x-caliper-priority'] = String(options.priority);
    let body: Buffer;
    if (this.binary) {
      const raws = inputs.map(inputBytes);
      const json = Buffer.from(
        JSON.stringify({
          ...head,
          inputs: inputs.map((t, i) => ({
            name: t.name,
            datatype: t.datatype,
            shape: t.shape,
            parameters: { binary_data_size: raws[i]!.byteLength },
          })),
          ...(options.outputs ? { outputs: options.outputs.map((name) => ({ name })) } : {}),
          parameters: { binary_data_output: true },
        }),
      );
      body = Buffer.concat([json, ...raws]);
      headers['content-type'] = 'application/octet-stream';
      headers['inference-header-content-length'] = String(json.byteLength);
    } else {
      body = Buffer.from(
        stringifyExactJson({
          ...head,
          inputs: inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, data: jsonData(t) })),
          ...(options.outputs ? { outputs: options.outputs.map((name) => ({ name })) } : {}),
        }),
      );
      headers['content-type'] = 'application/json';
    }
    const answer = await this.call('POST', `${RestInferenceClient.modelPath(model, options.version)}/infer`, {
      body,
      headers,
      timeoutMs: options.timeoutMs,
    });
    return RestInferenceClient.result(answer);
  }

  private static result(answer: HttpAnswer): InferResult {
    const lengthHeader = answer.headers['inference-header-content-length'];
    const jsonLength = typeof lengthHeader === 'string' ? Number(lengthHeader) : answer.body.byteLength;
    if (!Number.isSafeInteger(jsonLength) || jsonLength > answer.body.byteLength) {
      throw new InferenceClientError(
        `response: Inference-Header-Content-Length ${String(lengthHeader)} is past the ${answer.body.byteLength}-byte body`,
        { retryable: false },
      );
    }
    const parsed = parseExactJson(answer.body.toString('utf8', 0, jsonLength)) as {
      model_name: string;
      model_version: string;
      id?: string;
      outputs: {
        name: string;
        datatype: string;
        shape: number[];
        data?: unknown[];
        parameters?: { binary_data_size?: number };
      }[];
    };
    let offset = jsonLength;
    const outputs: Record<string, InferOutput> = {};
    for (const o of parsed.outputs) {
      const size = o.parameters?.binary_data_size;
      if (size !== undefined) {
        outputs[o.name] = outputFromRaw(o.name, o.datatype, o.shape, answer.body.subarray(offset, offset + size));
        offset += size;
      } else {
        outputs[o.name] = outputFromValues(o.name, o.datatype, o.shape, (o.data ?? []).flat(Infinity as 1));
      }
    }
    return {
      modelName: parsed.model_name,
      modelVersion: parsed.model_version,
      ...(parsed.id !== undefined ? { id: parsed.id } : {}),
      outputs,
    };
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }
}
