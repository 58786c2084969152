/**
 * The server side of bench/fuzz-memory.ts: serves examples/fraud-detector on an ephemeral port in a child process
 * started with --expose-gc, and answers its parent's messages with process.memoryUsage(), after a full GC on
 * request. Not for use on its own.
 */
import { pino } from 'pino';
import { startServing } from '../src/server/serving.ts';

const server = await startServing({
  paths: ['examples/fraud-detector'],
  port: 0,
  logger: pino({ level: 'silent' }),
  auth: { apiKeys: [] },
});

const gc = (globalThis as { gc?: () => void }).gc;
process.on('message', (message: { kind: 'memory' | 'gc' | 'close' }) => {
  if (message.kind === 'close') {
    void server.close().then(() => process.exit(0));
    return;
  }
  if (message.kind === 'gc') {
    // Twice: the first pass may only queue finalizers (closed sockets, released buffers).
    gc?.();
    gc?.();
  }
  process.send?.({ kind: 'memory', usage: process.memoryUsage() });
});
process.send?.({ kind: 'ready', url: server.url });
