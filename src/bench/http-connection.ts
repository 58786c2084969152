import { connect, type Socket } from 'node:net';

/** How one HTTP exchange ended. `status` 0 means the connection failed before a response arrived. */
export interface HttpExchange {
  status: number;
  /** The Server-Timing header, when the response carried one and it was asked for. */
  serverTiming?: string;
  error?: string;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
const CHUNKED = /\r\ntransfer-encoding:[ \t]*chunked/i;
const CONNECTION_CLOSE = /\r\nconnection:[ \t]*close/i;
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
  private pending: ((exchange: HttpExchange) => void) | undefined;
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

  /** Sends one complete request (head and body) and resolves with the response's outcome; never rejects. */
  send(request: Buffer): Promise<HttpExchange> {
    if (this.pending) return Promise.resolve({ status: 0, error: 'connection busy' });
    return new Promise((resolve) => {
      this.pending = resolve;
      if (this.socket) {
        this.socket.write(request);
        return;
      }
      this.open().then((socket) => socket.write(request), (error: Error) => this.finish({ status: 0, error: error.message }));
    });
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
    const head = data.toString('latin1', 0, headEnd);
    const bodyStart = headEnd + 4;
    let complete: boolean;
    let end: number;
    const length = CONTENT_LENGTH.exec(head);
    if (length) {
      end = bodyStart + Number(length[1]);
      complete = data.length >= end;
    } else if (CHUNKED.test(head)) {
      const last = data.indexOf(LAST_CHUNK, bodyStart - 2);
      end = last + LAST_CHUNK.length;
      complete = last >= 0;
    } else {
      end = bodyStart;
      complete = true;
    }
    if (!complete) {
      this.buffer = data;
      return;
    }
    // One request is in flight at a time, so bytes past this response would be a protocol error.
    this.buffer = end < data.length ? data.subarray(end) : undefined;
    const status = Number(head.slice(9, 12));
    const exchange: HttpExchange = { status };
    if (this.readServerTiming) {
      const timing = SERVER_TIMING.exec(head);
      if (timing) exchange.serverTiming = timing[1];
    }
    if (CONNECTION_CLOSE.test(head)) {
      this.socket?.destroy();
      this.socket = undefined;
      this.buffer = undefined;
    }
    this.finish(exchange);
  }
}

/** Encodes a POST request once, so sending it costs a single socket write. */
export function encodePost(host: string, path: string, body: string, contentType = 'application/json'): Buffer {
  const bodyBytes = Buffer.from(body);
  const head = `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: ${contentType}\r\nContent-Length: ${bodyBytes.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), bodyBytes]);
}
