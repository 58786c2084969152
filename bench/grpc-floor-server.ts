/*
 * The transport floor for unary ModelInfer in bench/protocols.ts: a server that answers every call with the
 * same pre-serialized ModelInferResponse (the model's output shape, zeros) and does nothing else, no decoding,
 * no model. KIND grpc-js: a grpc-js Server with Caliper's server options; KIND http2: Node's http2 module
 * alone, as grpc-js uses it (response headers, one message, trailers). Caliper's own figures can only be
 * read against these: whatever Caliper does happens on top of them.
 *
 *   node --import tsx bench/grpc-floor-server.ts grpc-js|http2 PORT MODEL OUTPUT OUTPUT_WIDTH
 */
import { constants, createServer, type ServerHttp2Stream } from 'node:http2';
import {
  Server,
  ServerCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { grpcServerOptions } from '../src/server/grpc/grpc-server.ts';
import { inferenceServiceDefinition, type ModelInferResponse } from '../src/protocol/service-definition.ts';

const [kind, portArg, model, output, widthArg] = process.argv.slice(2);
const port = Number(portArg);
const width = Number(widthArg);
const method = inferenceServiceDefinition().ModelInfer!;
const answer = (method.responseSerialize as (m: ModelInferResponse) => Buffer)({
  model_name: model!,
  model_version: '1',
  id: '',
  outputs: [{ name: output!, datatype: 'FP32', shape: [1, width] }],
  raw_output_contents: [Buffer.alloc(4 * width)],
});

if (kind === 'grpc-js') {
  const identity = (message: Buffer): Buffer => message;
  const server = new Server(grpcServerOptions(8 * 1024 * 1024));
  const service: ServiceDefinition = {
    ModelInfer: { ...method, requestDeserialize: identity, responseSerialize: identity },
  };
  server.addService(service, {
    ModelInfer: (_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => callback(null, answer),
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (error) =>
      error ? reject(error) : resolve(),
    ),
  );
} else if (kind === 'http2') {
  const framed = Buffer.alloc(5 + answer.byteLength);
  framed.writeUInt32BE(answer.byteLength, 1);
  answer.copy(framed, 5);
  const server = createServer();
  server.on('stream', (stream: ServerHttp2Stream) => {
    stream.on('data', () => undefined);
    stream.on('end', () => {
      stream.respond(
        { [constants.HTTP2_HEADER_STATUS]: 200, 'content-type': 'application/grpc' },
        { waitForTrailers: true },
      );
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(framed);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
} else {
  throw new Error(`unknown floor kind "${kind}" (grpc-js or http2)`);
}
process.send?.('ready');
// A normal exit on SIGINT, so that `node --cpu-prof` writes its profile.
process.once('SIGINT', () => process.exit(0));
