/*
 * Closed-loop gRPC load generator for bench/protocols.ts (runs in its own process): CONCURRENCY requests always
 * in flight, each a pre-serialized ModelInferRequest with raw_input_contents, answers not decoded (as autocannon
 * neither builds nor parses bodies). Modes:
 *   unary        one ModelInfer call per request, written frame by frame (bench/h2-unary-client.ts, as h2load
 *                would), the requests spread over CONNECTIONS HTTP/2 connections; one call is first checked for
 *                grpc-status 0 with Node's client;
 *   unary-http2  the same through Node's HTTP/2 client with gRPC framing (45–60 µs of client CPU per call);
 *   unary-grpcjs the same through grpc-js's client (one channel);
 *   stream       all requests as messages of one ModelStreamInfer call (grpc-js).
 * Prints one JSON line {rps, errors, firstError, p50Ms, p99Ms, cpuUsPerRequest}.
 *
 *   node --import tsx bench/grpc-load.ts MODE HOST:PORT MODEL INPUT WIDTH SECONDS CONCURRENCY [CONNECTIONS]
 *
 * CONNECTIONS (unary and unary-http2, default 1): HTTP/2 connections the requests are spread over, request i
 * on connection i mod CONNECTIONS.
 */
import { connect, constants } from 'node:http2';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { inferenceServiceDefinition, type ModelInferRequest } from '../src/protocol/service-definition.ts';
import { RawUnaryConnection } from './h2-unary-client.ts';
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
const connections = Number(connectionsArg ?? 1);
const sessions =
  mode === 'unary-http2' || mode === 'unary'
    ? Array.from({ length: mode === 'unary' ? 1 : connections }, () => connect(`http://${address}`))
    : [];
const requestHeaders = {
  [constants.HTTP2_HEADER_METHOD]: 'POST',
  [constants.HTTP2_HEADER_PATH]: method.path,
  'content-type': 'application/grpc',
  te: 'trailers',
};

function http2One(slot: number, once = false): void {
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
    if (!once) http2One(slot);
  });
  stream.end(frame);
}

let raw: RawUnaryConnection[] = [];

function rawOne(connection: RawUnaryConnection): void {
  if (!running || connection.failed !== undefined) return;
  const started = performance.now();
  connection.call((failure) => {
    if (failure === undefined) {
      completed++;
      latencies.push(performance.now() - started);
    } else {
      errors++;
      firstError ||= failure;
    }
    rawOne(connection);
  });
}

function one(): void {
  if (!running) return;
  const started = performance.now();
  client.makeUnaryRequest(
    method.path,
    identity,
    identity,
    payload,
    new Metadata(),
    {},
    (error: ServiceError | null) => {
      if (error) {
        errors++;
        firstError ||= error.message;
      } else {
        completed++;
        latencies.push(performance.now() - started);
      }
      one();
    },
  );
}

if (sessions.length > 0)
  await Promise.all(
    sessions.map(
      (session) =>
        new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject)),
    ),
  );
else
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())),
  );
if (mode === 'unary') {
  // The frame-level client cannot read grpc-status: check one call's status with Node's client first.
  await new Promise<void>((resolve) => {
    http2One(0, true);
    const check = setInterval(() => {
      if (completed + errors > 0) {
        clearInterval(check);
        resolve();
      }
    }, 1);
  });
  if (errors > 0) {
    console.error(`grpc-load: the check call failed: ${firstError}`);
    process.exit(1);
  }
  completed = 0;
  latencies.length = 0;
  const [host, port] = [
    address!.slice(0, address!.lastIndexOf(':')),
    Number(address!.slice(address!.lastIndexOf(':') + 1)),
  ];
  raw = await Promise.all(
    Array.from({ length: connections }, () => RawUnaryConnection.open(host, port, method.path, frame)),
  );
}
const cpuBefore = process.cpuUsage();
const started = performance.now();
if (mode === 'stream') streamLoad();
else if (mode === 'unary') for (let i = 0; i < concurrency; i++) rawOne(raw[i % raw.length]!);
else if (mode === 'unary-http2') for (let i = 0; i < concurrency; i++) http2One(i);
else for (let i = 0; i < concurrency; i++) one();
await new Promise((r) => setTimeout(r, seconds * 1000));
running = false;
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
latencies.sort((a, b) => a - b);
const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
console.log(
  JSON.stringify({
    rps: completed / elapsed,
    errors,
    firstError,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, completed),
  }),
);
client.close();
for (const session of sessions) session.close();
for (const connection of raw) connection.close();
process.exit(0);
