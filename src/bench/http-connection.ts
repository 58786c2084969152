import { connect, type Socket } from 'node:net';

/** How one HTTP exchange ended. `status` 0 means the connection failed before a response arrived. */
export type ExchangeCallback = (exchange: HttpExchange) => void;

export interface HttpExchange {
  status: number;
  /** The Server-Timing header, when the response carried one and it was asked for. */
  serverTiming?: string;
  error?: string;
}

const HEADER_END = Buffer.from('\r\n\r\n');
// Header names are case-insensitive; servers nearly always send one of these two spellings, found without
// decoding the head. Anything else falls back to a regular expression over the decoded head.
const CONTENT_LENGTH_SPELLINGS = [Buffer.from('\r\ncontent-length:'), Buffer.from('\r\nContent-Length:')];
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
const CHUNKED = /\r\ntransfer-encoding:[ \t]*chunked/i;
/** Matches "Connection: close" and "connection: close". */
const CONNECTION_CLOSE_BYTES = Buffer.from('onnection: close');
const SERVER_TIMING = /\r\nserver-timing:[ \t]*([^\r]*)/i;
const LAST_CHUNK = Buffer.from('\r\n0\r\n\r\n');

/**
 * One keep-alive HTTP/1.1 connection that sends pre-encoded requests, one at a time, and parses just
 * enough of each response (status, framing, Server-Timing) to know where it ends. Doing this on a raw
 * socket rather than through a general client keeps the generator's per-request cost small enough not to
 * be the bottleneck.
 */
export class HttpConnection {
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private pending: ExchangeCallback | undefined;
  private buffer: Buffer | undefined;
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly readServerTiming: boolean,
  ) {}

  get busy(): boolean {
    return this.pending !== undefined;
  }

  /**
   * Sends one complete request (head and body); `done` gets the response's outcome. A callback rather than a
   * promise: at tens of thousands of requests a second the promise machinery is a visible share of the cost.
   */
  send(request: Buffer, done: ExchangeCallback): void {
    if (this.pending) {
      done({ status: 0, error: 'connection busy' });
      return;
    }
    this.pending = done;
    if (this.socket) {
      this.socket.write(request);
      return;
    }
    this.open().then(
      (socket) => socket.write(request),
      (error: Error) => this.finish({ status: 0, error: error.message }),
    );
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.socket = undefined;
  }

  private open(): Promise<Socket> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    this.connecting ??= new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: this.host, port: this.port, noDelay: true });
      let connected = false;
      socket.once('connect', () => {
        connected = true;
        this.connecting = undefined;
        this.socket = socket;
        resolve(socket);
      });
      // Events from a socket this connection has already given up on are ignored.
      socket.on('data', (chunk: Buffer) => {
        if (socket === this.socket) this.onData(chunk);
      });
      socket.on('error', (error: Error) => {
        if (!connected) {
          this.connecting = undefined;
          reject(error);
        } else if (socket === this.socket) {
          this.drop(error.message);
        }
      });
      socket.on('close', () => {
        if (socket === this.socket) this.drop('connection closed by the server');
      });
    });
    return this.connecting;
  }

  private drop(reason: string): void {
    this.socket?.destroy();
    this.socket = undefined;
    this.buffer = undefined;
    if (this.pending) this.finish({ status: 0, error: reason });
  }

  private finish(exchange: HttpExchange): void {
    const resolve = this.pending;
    this.pending = undefined;
    resolve?.(exchange);
  }

  private onData(chunk: Buffer): void {
    const data = this.buffer ? Buffer.concat([this.buffer, chunk]) : chunk;
    const headEnd = data.indexOf(HEADER_END);
    if (headEnd < 0) {
      this.buffer = data;
      return;
    }
    const bodyStart = headEnd + 4;
    let head: string | undefined;
    let complete: boolean;
    let end: number;
    const length = contentLengthOf(data, headEnd);
    if (length >= 0) {
      end = bodyStart + length;
      complete = data.length >= end;
    } else {
      head = data.toString('latin1', 0, headEnd);
      const declared = CONTENT_LENGTH.exec(head);
      if (declared) {
        end = bodyStart + Number(declared[1]);
        complete = data.length >= end;
      } else if (CHUNKED.test(head)) {
        const last = data.indexOf(LAST_CHUNK, bodyStart - 2);
        end = last + LAST_CHUNK.length;
        complete = last >= 0;
      } else {
        end = bodyStart;
        complete = true;
      }
    }
    if (!complete) {
      this.buffer = data;
      return;
    }
    // One request is in flight at a time, so bytes past this response would be a protocol error.
    this.buffer = end < data.length ? data.subarray(end) : undefined;
    // "HTTP/1.1 200 ": the status is the three digits at bytes 9..11.
    const status = (data[9]! - 48) * 100 + (data[10]! - 48) * 10 + (data[11]! - 48);
    const exchange: HttpExchange = { status };
    if (this.readServerTiming) {
      head ??= data.toString('latin1', 0, headEnd);
      const timing = SERVER_TIMING.exec(head);
      if (timing) exchange.serverTiming = timing[1];
    }
    const closeAt = data.indexOf(CONNECTION_CLOSE_BYTES);
    if (closeAt >= 0 && closeAt < headEnd) {
      this.socket?.destroy();
      this.socket = undefined;
      this.buffer = undefined;
    }
    this.finish(exchange);
  }
}

/** The Content-Length value, read from the bytes of the head; -1 when the header is absent or not spelled as usual. */
function contentLengthOf(data: Buffer, headEnd: number): number {
  for (const spelling of CONTENT_LENGTH_SPELLINGS) {
    const at = data.indexOf(spelling);
    if (at < 0 || at > headEnd) continue;
    let i = at + spelling.length;
    while (data[i] === 32 || data[i] === 9) i++;
    let value = 0;
    let digits = 0;
    for (; data[i]! >= 48 && data[i]! <= 57; i++, digits++) value = value * 10 + (data[i]! - 48);
    return digits > 0 ? value : -1;
  }
  return -1;
}

/** Encodes a POST request once, so sending it costs a single socket write. */
export function encodePost(host: string, path: string, body: string, contentType = 'application/json'): Buffer {
  const bodyBytes = Buffer.from(body);
  const head = `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: ${contentType}\r\nContent-Length: ${bodyBytes.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), bodyBytes]);
}
