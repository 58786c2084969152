/*
 * A minimal HTTP/2 client for unary gRPC load, written frame by frame as h2load does: requests are pre-built
 * HEADERS + DATA frames (the header block uses only the static HPACK table and literals, so it never changes),
 * and answers are read only as far as frame headers. Node's own http2 client spends 45–60 µs of CPU per call
 * (stream objects, events, header objects), which capped the load generator's core below what the server can
 * serve; this one spends a few µs.
 *
 * An answer counts as a success when the server sent a gRPC message and then trailers. gRPC servers answer
 * errors "trailers-only" (no message), which counts as a failure; the status code is not decoded (that would
 * need HPACK's Huffman and dynamic tables), so bench/grpc-load.ts checks it once with Node's client before loading.
 * Flow control is honoured on the send side; the receive windows are opened wide.
 */
import { connect, type Socket } from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const MAX_WINDOW = 0x7fff_ffff;
const DEFAULT_WINDOW = 65_535;

function frameHeader(
  target: Buffer,
  offset: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  target.writeUIntBE(length, offset, 3);
  target[offset + 3] = type;
  target[offset + 4] = flags;
  target.writeUInt32BE(streamId, offset + 5);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(9 + payload.byteLength);
  frameHeader(out, 0, payload.byteLength, type, flags, streamId);
  payload.copy(out, 9);
  return out;
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1); `high` holds the bits above the prefix. */
function hpackInteger(value: number, prefixBits: number, high: number): number[] {
  const limit = (1 << prefixBits) - 1;
  if (value < limit) return [high | value];
  const bytes = [high | limit];
  let rest = value - limit;
  while (rest >= 128) {
    bytes.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return bytes;
}

function hpackString(text: string): number[] {
  const bytes = Buffer.from(text, 'latin1');
  return [...hpackInteger(bytes.byteLength, 7, 0), ...bytes];
}

/** The request header block: :method POST and :scheme http from the static table, the rest literal without indexing. */
function requestHeaderBlock(authority: string, path: string): Buffer {
  return Buffer.from([
    0x83, // :method POST (static index 3)
    0x86, // :scheme http (static index 6)
    ...hpackInteger(4, 4, 0),
    ...hpackString(path), // :path (static name 4)
    ...hpackInteger(1, 4, 0),
    ...hpackString(authority), // :authority (static name 1)
    ...hpackInteger(31, 4, 0),
    ...hpackString('application/grpc'), // content-type (static name 31)
    0x00,
    ...hpackString('te'),
    ...hpackString('trailers'),
  ]);
}

/** Called once per call: undefined on success, else why it failed. */
export type CallDone = (failure?: string) => void;

interface OpenStream {
  done: CallDone;
  headerFrames: number;
  gotMessage: boolean;
}

/** One HTTP/2 connection carrying unary calls of one method with one fixed request message. */
export class RawUnaryConnection {
  private nextStreamId = 1;
  private sendWindow = DEFAULT_WINDOW;
  private streamWindow = DEFAULT_WINDOW;
  private maxFrame = 16_384;
  private received = 0;
  private pending: Buffer = Buffer.alloc(0);
  private readonly streams = new Map<number, OpenStream>();
  private readonly waiting: CallDone[] = [];
  private failure: string | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly headerBlock: Buffer,
    /** The gRPC length-prefixed request message. */
    private readonly message: Buffer,
  ) {
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', (error) => this.fail(error.message));
    socket.on('close', () => this.fail('connection closed'));
  }

  static open(host: string, port: number, path: string, message: Buffer): Promise<RawUnaryConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, noDelay: true }, () => {
        const settings = Buffer.alloc(6);
        settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 0);
        settings.writeUInt32BE(MAX_WINDOW, 2);
        const increment = Buffer.alloc(4);
        increment.writeUInt32BE(MAX_WINDOW - DEFAULT_WINDOW, 0);
        socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings), frame(WINDOW_UPDATE, 0, 0, increment)]));
        socket.off('error', reject);
        resolve(new RawUnaryConnection(socket, requestHeaderBlock(`${host}:${port}`, path), message));
      });
      socket.once('error', reject);
    });
  }

  /** Starts one call; `done` runs when its answer (or a failure) is complete. */
  call(done: CallDone): void {
    if (this.failure !== undefined) {
      done(this.failure);
      return;
    }
    if (this.message.byteLength > this.sendWindow || this.waiting.length > 0) {
      this.waiting.push(done);
      return;
    }
    this.send(done);
  }

  /** Why the connection failed, once it has. */
  get failed(): string | undefined {
    return this.failure;
  }

  close(): void {
    this.socket.destroy();
  }

  private send(done: CallDone): void {
    const { headerBlock, message } = this;
    if (message.byteLength > this.streamWindow)
      throw new Error(`request of ${message.byteLength} bytes exceeds the server's stream window ${this.streamWindow}`);
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const dataFrames = Math.max(1, Math.ceil(message.byteLength / this.maxFrame));
    const out = Buffer.allocUnsafe(9 + headerBlock.byteLength + 9 * dataFrames + message.byteLength);
    frameHeader(out, 0, headerBlock.byteLength, HEADERS, END_HEADERS, id);
    headerBlock.copy(out, 9);
    let at = 9 + headerBlock.byteLength;
    for (let i = 0; i < dataFrames; i++) {
      const chunk = message.subarray(i * this.maxFrame, (i + 1) * this.maxFrame);
      frameHeader(out, at, chunk.byteLength, DATA, i === dataFrames - 1 ? END_STREAM : 0, id);
      chunk.copy(out, at + 9);
      at += 9 + chunk.byteLength;
    }
    this.sendWindow -= message.byteLength;
    this.streams.set(id, { done, headerFrames: 0, gotMessage: false });
    this.socket.write(out);
  }

  private read(chunk: Buffer): void {
    let data: Buffer = this.pending.byteLength > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    // Calls started by the callbacks below go out in one write.
    this.socket.cork();
    while (data.byteLength >= 9) {
      const length = data.readUIntBE(0, 3);
      if (data.byteLength < 9 + length) break;
      this.onFrame(data[3]!, data[4]!, data.readUInt32BE(5) & MAX_WINDOW, data.subarray(9, 9 + length));
      data = data.subarray(9 + length);
    }
    this.pending = data;
    this.socket.uncork();
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    switch (type) {
      case DATA: {
        this.received += payload.byteLength;
        if (this.received > MAX_WINDOW / 2) {
          const increment = Buffer.alloc(4);
          increment.writeUInt32BE(this.received, 0);
          this.socket.write(frame(WINDOW_UPDATE, 0, 0, increment));
          this.received = 0;
        }
        const stream = this.streams.get(streamId);
        if (!stream) return;
        const padding = flags & PADDED ? 1 + payload[0]! : 0;
        if (payload.byteLength > padding) stream.gotMessage = true;
        if (flags & END_STREAM) this.finish(streamId, stream.gotMessage ? undefined : 'stream ended without a message');
        return;
      }
      case HEADERS: {
        const stream = this.streams.get(streamId);
        if (!stream) return;
        stream.headerFrames++;
        if (flags & END_STREAM) {
          this.finish(streamId, stream.gotMessage ? undefined : 'trailers-only answer (a gRPC error status)');
        }
        return;
      }
      case RST_STREAM:
        this.finish(streamId, `RST_STREAM code ${payload.readUInt32BE(0)}`);
        return;
      case SETTINGS:
        if (flags & ACK) return;
        for (let at = 0; at + 6 <= payload.byteLength; at += 6) {
          const id = payload.readUInt16BE(at);
          const value = payload.readUInt32BE(at + 2);
          if (id === SETTINGS_INITIAL_WINDOW_SIZE) this.streamWindow = value;
          else if (id === SETTINGS_MAX_FRAME_SIZE) this.maxFrame = value;
        }
        this.socket.write(frame(SETTINGS, ACK, 0));
        return;
      case PING:
        if (!(flags & ACK)) this.socket.write(frame(PING, ACK, 0, payload));
        return;
      case WINDOW_UPDATE:
        if (streamId === 0) {
          this.sendWindow += payload.readUInt32BE(0) & MAX_WINDOW;
          while (this.waiting.length > 0 && this.message.byteLength <= this.sendWindow)
            this.send(this.waiting.shift()!);
        }
        return;
      case GOAWAY:
        this.fail(`GOAWAY code ${payload.readUInt32BE(4)}`);
        return;
      default:
    }
  }

  private finish(streamId: number, failure: string | undefined): void {
    const stream = this.streams.get(streamId);
    if (!stream) return;
    this.streams.delete(streamId);
    stream.done(failure);
  }

  private fail(reason: string): void {
    if (this.failure !== undefined) return;
    this.failure = reason;
    const open = [...this.streams.values(), ...this.waiting.map((done) => ({ done }))];
    this.streams.clear();
    this.waiting.length = 0;
    for (const { done } of open) done(reason);
  }
}
