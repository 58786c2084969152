/*
 * Closed-loop gRPC load generator for bench/protocols.ts (runs in its own process): N requests always in
 * flight on one channel, each a pre-serialized ModelInferRequest with raw_input_contents, answers not decoded
 * (as autocannon neither builds nor parses bodies). MODE unary: one ModelInfer call per request, sent with
 * Node's HTTP/2 client and gRPC's length-prefixed framing, as h2load or ghz would (grpc-js's own client costs
 * as much CPU per call as the server and would be the bottleneck); MODE unary-grpcjs: the same through grpc-js;
 * MODE stream: all requests as messages of one ModelStreamInfer call (grpc-js). Prints one JSON line
 * {rps, errors, p50Ms, p99Ms, cpuUsPerRequest}.
 *
 *   node --import tsx bench/grpc-load.ts unary|unary-grpcjs|stream HOST:PORT MODEL INPUT WIDTH SECONDS CONCURRENCY [CONNECTIONS]
 *
 * CONNECTIONS (unary only, default 1): HTTP/2 connections the requests are spread over.
 */
import { connect, constants } from 'node:http2';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { inferenceServiceDefinition, type ModelInferRequest } from '../src/server/grpc/service-definition.ts';
import { benchRows } from './protocol-payloads.ts';

const [mode, address, model, input, widthArg, secondsArg, concurrencyArg, connectionsArg] = process.argv.slice(2);
const width = Number(widthArg);
const seconds = Number(secondsArg);
const concurrency = Number(concurrencyArg);

const method = inferenceServiceDefinition().ModelInfer!;
const request: ModelInferRequest = {
  model_name: model!,
  inputs: [{ name: input!, datatype: 'FP32', shape: [1, width] }],
  raw_input_contents: [new Uint8Array(benchRows(width).buffer)],
};
const payload = method.requestSerialize(request);
const identity = (b: Buffer): Buffer => b;
const client = new Client(address!, credentials.createInsecure());

let completed = 0;
let errors = 0;
let firstError = '';
const latencies: number[] = [];
let running = true;

const streamMethod = inferenceServiceDefinition().ModelStreamInfer!;
/** Stream answers carry no call status: an answer with error_message set (field 1, non-empty) is a failure. */
const streamFailed = (answer: Buffer): boolean => answer.byteLength > 1 && answer[0] === 0x0a && answer[1] !== 0;

function streamLoad(): void {
  const call = client.makeBidiStreamRequest(streamMethod.path, identity, identity, new Metadata());
  const sentAt: number[] = [];
  call.on('data', (answer: Buffer) => {
    const started = sentAt.shift()!;
    if (streamFailed(answer)) {
      errors++;
      firstError ||= 'stream answer with error_message';
    } else {
      completed++;
      latencies.push(performance.now() - started);
    }
    if (running) {
      sentAt.push(performance.now());
      call.write(payload);
    } else if (sentAt.length === 0) call.end();
  });
  call.on('error', () => undefined);
  for (let i = 0; i < concurrency; i++) {
    sentAt.push(performance.now());
    call.write(payload);
  }
}

/** One gRPC message frame: uncompressed flag, 4-byte big-endian length, the message. */
const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), payload]);
frame.writeUInt32BE(payload.byteLength, 1);
const sessions = mode === 'unary' ? Array.from({ length: Number(connectionsArg ?? 1) }, () => connect(`http://${address}`)) : [];
const requestHeaders = {
  [constants.HTTP2_HEADER_METHOD]: 'POST', [constants.HTTP2_HEADER_PATH]: method.path,
  'content-type': 'application/grpc', te: 'trailers',
};

function http2One(slot: number): void {
  if (!running) return;
  const started = performance.now();
  const stream = sessions[slot % sessions.length]!.request(requestHeaders);
  let grpcStatus: string | undefined;
  stream.on('response', (headers) => {
    if (headers['grpc-status'] !== undefined) grpcStatus = String(headers['grpc-status']);
  });
  stream.on('trailers', (trailers) => {
    grpcStatus = String(trailers['grpc-status']);
  });
  stream.on('data', () => undefined);
  stream.on('close', () => {
    if (grpcStatus === '0') {
      completed++;
      latencies.push(performance.now() - started);
    } else {
      errors++;
      firstError ||= `grpc-status ${grpcStatus ?? 'missing'}`;
    }
    http2One(slot);
  });
  stream.end(frame);
}

function one(): void {
  if (!running) return;
  const started = performance.now();
  client.makeUnaryRequest(method.path, identity, identity, payload, new Metadata(), {}, (error: ServiceError | null) => {
    if (error) {
      errors++;
      firstError ||= error.message;
    } else {
      completed++;
      latencies.push(performance.now() - started);
    }
    one();
  });
}

if (sessions.length > 0) await Promise.all(sessions.map((session) => new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject))));
else await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())));
const cpuBefore = process.cpuUsage();
const started = performance.now();
if (mode === 'stream') streamLoad();
else if (mode === 'unary') for (let i = 0; i < concurrency; i++) http2One(i);
else for (let i = 0; i < concurrency; i++) one();
await new Promise((r) => setTimeout(r, seconds * 1000));
running = false;
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
latencies.sort((a, b) => a - b);
const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
console.log(JSON.stringify({ rps: completed / elapsed, errors, firstError, p50Ms: at(0.5), p99Ms: at(0.99), cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, completed) }));
client.close();
for (const session of sessions) session.close();
process.exit(0);
