import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** How a draining HTTP server lets go of its keep-alive connections. */
export interface DrainSettings {
  /**
   * A connection with no request in flight is closed once it has been quiet this long since the drain began
   * (default 1000 ms). Until then a request it sends is answered, with `Connection: close`.
   */
  idleGraceMs?: number;
}

/**
 * The response a connection is writing now, unfinished (Node's HTTP server keeps it on the socket as `_httpMessage`
 * while a request is being answered, and clears it when the response finishes).
 */
function respondingOn(socket: Socket): ServerResponse | undefined {
  const response = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  return response && !response.writableFinished ? response : undefined;
}

interface ConnectionState {
  inflight: number;
  /** performance.now() of the last request start or response end on this connection. */
  lastActive: number;
}

/**
 * Tracks the HTTP server's connections so that shutdown never resets one a client may be writing a request on.
 *
 * Node's `server.close()` (and fastify's `forceCloseConnections: 'idle'`) destroys every connection that has no
 * request in flight at that instant; a keep-alive client that has just written its next request on such a
 * connection sees ECONNRESET, and a POST is not retried. While draining, this instead: leaves busy connections
 * alone (their answer carries `Connection: close`, after which Node ends them and the client stops reusing them);
 * closes an idle connection only after it stayed quiet for `idleGraceMs` since the drain began, with a FIN.
 */
export class ConnectionDrain {
  private readonly connections = new Map<Socket, ConnectionState>();
  private sweep: NodeJS.Timeout | undefined;
  private drainStarted = 0;

  constructor(
    private readonly server: Server,
    private readonly settings: DrainSettings = {},
  ) {
    // Per connection only: while serving, requests cost nothing here. Requests are counted once the drain begins.
    server.on('connection', (socket: Socket) => {
      this.connections.set(socket, { inflight: 0, lastActive: 0 });
      socket.once('close', () => this.connections.delete(socket));
    });
  }

  private readonly tracked = new WeakSet<ServerResponse>();

  /** Counts `response` in flight on its connection until it closes; then the connection's next response, if any. */
  private track(socket: Socket, state: ConnectionState, response: ServerResponse): void {
    if (this.tracked.has(response)) return;
    this.tracked.add(response);
    state.inflight++;
    state.lastActive = performance.now();
    response.once('close', () => {
      state.inflight--;
      state.lastActive = performance.now();
      // A pipelined request's response is attached to the socket when the one before it finishes.
      const next = respondingOn(socket);
      if (next) this.track(socket, state, next);
    });
  }

  private readonly onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const state = this.connections.get(request.socket);
    if (state) this.track(request.socket, state, response);
  };

  /** Open connections, and how many of them have a request in flight. */
  get counts(): { open: number; busy: number } {
    let busy = 0;
    for (const state of this.connections.values()) if (state.inflight > 0) busy++;
    return { open: this.connections.size, busy };
  }

  /**
   * Starts draining: from now on the server's own idle-connection sweep (run by `server.close()`) is a no-op and
   * this class closes quiet connections itself. Call before closing the server.
   */
  begin(): void {
    if (this.sweep) return;
    this.drainStarted = performance.now();
    // The responses in progress now (found on their sockets), then every request from here on.
    for (const [socket, state] of this.connections) {
      const response = respondingOn(socket);
      if (response) this.track(socket, state, response);
    }
    this.server.on('request', this.onRequest);
    // server.close() calls closeIdleConnections(), which destroys sockets a request may be arriving on.
    (this.server as { closeIdleConnections: () => void }).closeIdleConnections = () => undefined;
    const grace = this.settings.idleGraceMs ?? 1000;
    this.sweep = setInterval(
      () => {
        const now = performance.now();
        for (const [socket, state] of this.connections) {
          if (state.inflight > 0) continue;
          if (now - Math.max(state.lastActive, this.drainStarted) < grace) continue;
          // A FIN, not a reset: a client reading this connection sees it end cleanly.
          if (!socket.writableEnded) socket.end();
          else if (!socket.destroyed) socket.destroy();
        }
      },
      Math.max(10, Math.min(100, grace / 4)),
    );
    this.sweep.unref();
  }

  /** The drain timeout passed: cuts every connection still open. */
  forceClose(): void {
    for (const socket of this.connections.keys()) socket.destroy();
  }

  end(): void {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    this.server.off('request', this.onRequest);
  }
}
