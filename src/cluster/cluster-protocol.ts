/**
 * The messages between the primary of `caliper serve --workers N` and its workers, over the cluster IPC channel
 * (Node's `advanced` serialization: structured clone, so typed arrays cross as they are).
 *
 * A worker asks (`ask`, with an id) and the primary answers (`reply`, with the same id); the primary asks each
 * worker in turn for its part of an aggregate (`collect`), to apply a model-control request (`apply`) or to read
 * the registry again (`sync`), and the worker answers with `reply` too.
 */

/** The environment the primary gives each worker. */
export const WORKER_ENV = {
  /** The worker's slot, 1..N: stable across restarts, and the value of the x-caliper-worker header. */
  slot: 'CALIPER_WORKER_SLOT',
  /** The HTTP port every worker listens on (the primary picks one when --port is 0). */
  httpPort: 'CALIPER_CLUSTER_HTTP_PORT',
  /** The gRPC port every worker listens on (the primary picks one when --grpc-port is 0). */
  grpcPort: 'CALIPER_CLUSTER_GRPC_PORT',
} as const;

/** The response header naming the worker (its slot) that answered. */
export const WORKER_HEADER = 'x-caliper-worker';

/** An HTTP request one worker received and every worker applies (a /v2/repository load or unload). */
export interface ControlRequest {
  method: 'POST';
  url: string;
  headers: Record<string, string>;
  /** JSON body, when the request had one. */
  payload?: string;
}

/** One worker's answer to a ControlRequest. */
export interface ControlAnswer {
  slot: number;
  statusCode: number;
  body: string;
  contentType: string;
}

/** What a worker loaded, reported before it may listen. */
export interface LoadReport {
  /** Names of the models served. */
  models: string[];
  /** Models that failed to load, with the reason. */
  failures: { name: string; reason: string }[];
  /** Set when the worker has nothing to serve and the server should not start (as a single process would exit). */
  fatal?: string;
}

/** Memory of one worker process, in bytes (process.memoryUsage()). */
export interface WorkerMemory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export type CollectKind = 'metrics' | 'stats' | 'sla';

export interface CollectArgs {
  name?: string;
  version?: string;
}

/** Worker → primary questions. */
export type WorkerQuestion =
  | { type: 'hello' }
  | { type: 'loaded'; report: LoadReport }
  | { type: 'gather'; kind: CollectKind; args: CollectArgs }
  | { type: 'fanout'; request: ControlRequest }
  | { type: 'sync-all' };

/** Worker → primary notices (no answer). */
export type WorkerNotice =
  | { type: 'listening'; memory: WorkerMemory }
  | { type: 'state'; ready: boolean; models: string[] };

/** Primary → worker questions. */
export type PrimaryQuestion =
  | { type: 'collect'; kind: CollectKind; args: CollectArgs }
  | { type: 'apply'; request: ControlRequest }
  | { type: 'sync' };

/** Primary → worker notices. */
export type PrimaryNotice =
  /** Slots of the workers not serving and ready now (a worker is ready only when all are). */
  { type: 'cluster-state'; notReady: number[] };

export interface HelloAnswer {
  /** Marks the requests the primary asks a worker to apply, so that the worker does not fan them out again. */
  secret: string;
  /** The model-control requests applied so far, for a worker started later to apply before it listens. */
  replay: ControlRequest[];
}

export type LoadVerdict = { go: true } | { go: false; reason: string };

/** One worker's part of an aggregate, or the error it answered (e.g. an unknown model). */
export type CollectedPart<T> = { slot: number; value: T } | { slot: number; error: { code: string; message: string } };

/** A question and its id, in either direction. */
export interface Ask<Q> {
  kind: 'ask';
  id: number;
  question: Q;
}

export interface Reply {
  kind: 'reply';
  id: number;
  answer?: unknown;
  error?: string;
}

export interface Notice<N> {
  kind: 'notice';
  notice: N;
}

export type ToPrimary = Ask<WorkerQuestion> | Reply | Notice<WorkerNotice>;
export type ToWorker = Ask<PrimaryQuestion> | Reply | Notice<PrimaryNotice>;

/** Pending questions by id, each settled by its reply or rejected at its deadline. */
export class PendingAnswers {
  private next = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();

  /** A new id and the promise of its answer; rejected with `what` named after `timeoutMs`. */
  open(timeoutMs: number, what: string): { id: number; answer: Promise<unknown> } {
    const id = this.next++;
    const answer = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${what}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
    });
    return { id, answer };
  }

  settle(reply: Reply): void {
    const entry = this.pending.get(reply.id);
    if (!entry) return;
    this.pending.delete(reply.id);
    clearTimeout(entry.timer);
    if (reply.error !== undefined) entry.reject(new Error(reply.error));
    else entry.resolve(reply.answer);
  }

  /** Rejects every open question (the other side is gone). */
  failAll(reason: string): void {
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(new Error(reason));
      this.pending.delete(id);
    }
  }
}
