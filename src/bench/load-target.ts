import { CaliperError } from '../errors.ts';
import { encodePost, HttpConnection } from './http-connection.ts';
import type { BenchProtocol, RequestData } from './request-data.ts';

/** How one request ended: `status` is the HTTP status, or "network" when no response came. */
export interface RequestOutcome {
  ok: boolean;
  status: string;
  serverTiming?: string;
}

export type OutcomeCallback = (outcome: RequestOutcome) => void;

/** One connection of the load generator: sends the next request of the data set, one at a time. */
export interface LoadClient {
  send(done: OutcomeCallback): void;
  close(): void;
}

const NETWORK_FAILURE: RequestOutcome = Object.freeze({ ok: false, status: 'network' });
const SUCCESS: RequestOutcome = Object.freeze({ ok: true, status: '200' });

/** Where load goes and what it sends; each client is one connection. */
export interface LoadTarget {
  readonly description: string;
  createClient(): LoadClient;
  close?(): Promise<void>;
}

/** The request path a protocol uses for a model. */
export function inferencePath(protocol: Exclude<BenchProtocol, 'grpc'>, model: string): string {
  const name = encodeURIComponent(model);
  return protocol === 'predict' ? `/models/${name}/predict` : `/v2/models/${name}/infer`;
}

/** Parses and checks a benchmark URL (http only: the generator speaks plain HTTP/1.1). */
export function parseTargetUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--url: "${url}" is not a URL (expected e.g. http://127.0.0.1:8000)`,
    );
  }
  if (parsed.protocol !== 'http:')
    throw new CaliperError('CALIPER_INVALID_INPUT', `--url: only http:// is supported, got "${parsed.protocol}//"`);
  return parsed;
}

/** Keep-alive HTTP/1.1 load: every request of the data set is encoded once, clients cycle through them. */
export class HttpLoadTarget implements LoadTarget {
  readonly description: string;
  private readonly requests: Buffer[];
  private readonly host: string;
  private readonly port: number;
  private next = 0;

  constructor(
    url: string,
    path: string,
    data: RequestData,
    private readonly readServerTiming = true,
  ) {
    const parsed = parseTargetUrl(url);
    this.host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = parsed.port ? Number(parsed.port) : 80;
    const base = parsed.pathname.replace(/\/$/, '');
    this.description = `POST ${parsed.origin}${base}${path}`;
    this.requests = data.documents.map((doc) => encodePost(parsed.host, `${base}${path}`, JSON.stringify(doc)));
  }

  createClient(): LoadClient {
    const connection = new HttpConnection(this.host, this.port, this.readServerTiming);
    return {
      send: (done) => {
        const request = this.requests[this.next]!;
        this.next = this.next + 1 === this.requests.length ? 0 : this.next + 1;
        connection.send(request, (exchange) => {
          if (exchange.status === 0) {
            done(NETWORK_FAILURE);
          } else if (exchange.status >= 200 && exchange.status < 300 && exchange.serverTiming === undefined) {
            done(SUCCESS);
          } else {
            const outcome: RequestOutcome = {
              ok: exchange.status >= 200 && exchange.status < 300,
              status: String(exchange.status),
            };
            if (exchange.serverTiming !== undefined) outcome.serverTiming = exchange.serverTiming;
            done(outcome);
          }
        });
      },
      close: () => connection.close(),
    };
  }
}
