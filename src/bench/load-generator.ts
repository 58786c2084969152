import { ArrivalSchedule, type ArrivalDistribution } from './arrival-schedule.ts';
import type { LoadClient, LoadTarget } from './load-target.ts';
import { WindowRotation, type MeasurementWindow } from './measurement-window.ts';

/** A running load: it records into the current window until the next boundary swaps in a fresh one. */
export interface RunningLoad {
  /** Closes the current window and starts recording into a new one; returns the closed window. */
  nextWindow(): MeasurementWindow;
  /** Stops sending, waits (bounded) for in-flight requests, closes the connections. */
  stop(): Promise<OpenLoopCounters | undefined>;
}

/** Open-loop bookkeeping: how far behind its schedule the generator (or the server) fell. */
export interface OpenLoopCounters {
  scheduled: number;
  /** Requests that waited for a free connection (the server was not keeping up). */
  delayed: number;
  connections: number;
}

const STOP_GRACE_MS = 2000;

/**
 * Closed loop: `concurrency` connections, each sending its next request as soon as the previous one is
 * answered. Latency runs from send to complete response.
 */
export function startClosedLoop(target: LoadTarget, concurrency: number): RunningLoad {
  const windows = new WindowRotation(performance.now());
  let running = true;
  const clients = Array.from({ length: concurrency }, () => target.createClient());
  let active = clients.length;
  let settle: (() => void) | undefined;
  const loop = (client: LoadClient): void => {
    const sentAt = performance.now();
    client.send((outcome) => {
      if (!running) {
        if (--active === 0) settle?.();
        return;
      }
      windows.record(performance.now() - sentAt, outcome);
      // A refused connection would otherwise spin; back off a little before retrying.
      if (outcome.status === 'network') setTimeout(() => loop(client), 10);
      else loop(client);
    });
  };
  for (const client of clients) loop(client);
  return {
    nextWindow: () => windows.next(),
    stop: async () => {
      running = false;
      await waitAtMost(
        new Promise<void>((resolve) => {
          settle = resolve;
        }),
        STOP_GRACE_MS,
      );
      for (const client of clients) client.close();
      return undefined;
    },
  };
}

/**
 * Open loop: requests are due at the times of an arrival schedule whether or not earlier ones have been
 * answered. Each request's latency counts from its scheduled time, not from when a connection was free to
 * send it, so a slow server cannot hide its queueing (no coordinated omission). Connections are opened as
 * needed up to `maxConnections`; past that, due requests wait in a backlog and the wait counts.
 */
export function startOpenLoop(
  target: LoadTarget,
  rate: number,
  distribution: ArrivalDistribution,
  maxConnections: number,
): RunningLoad {
  const schedule = new ArrivalSchedule(rate, distribution);
  const origin = performance.now();
  const windows = new WindowRotation(origin);
  let running = true;
  const idle: LoadClient[] = [];
  const all: LoadClient[] = [];
  const backlog: number[] = [];
  const counters: OpenLoopCounters = { scheduled: 0, delayed: 0, connections: 0 };
  let inflight = 0;
  let timer: NodeJS.Timeout | undefined;
  let settle: (() => void) | undefined;

  const sendOn = (client: LoadClient, scheduledAt: number): void => {
    inflight++;
    client.send((outcome) => {
      inflight--;
      if (running) windows.record(performance.now() - scheduledAt, outcome);
      if (running && backlog.length > 0) {
        sendOn(client, backlog.shift()!);
      } else {
        idle.push(client);
        if (!running && inflight === 0) settle?.();
      }
      // An answer wakes the loop anyway: requests due by now go out here (on this connection, free again) rather
      // than at the next timer.
      if (running) dispatchDue();
    });
  };

  const dispatch = (scheduledAt: number): void => {
    counters.scheduled++;
    let client = idle.pop();
    if (!client && all.length < maxConnections) {
      client = target.createClient();
      all.push(client);
      counters.connections = all.length;
    }
    if (client) {
      sendOn(client, scheduledAt);
    } else {
      counters.delayed++;
      backlog.push(scheduledAt);
    }
  };

  const dispatchDue = (): void => {
    const now = performance.now();
    while (origin + schedule.peek() <= now) dispatch(origin + schedule.next());
  };
  // Sends go out when a timer or an answer wakes the loop, never from a busy wait: polling with setImmediate until
  // the next arrival held a whole core at rates past ~1000 requests/s, a core the server under test lost on a small
  // machine. A request sent up to ~1 ms late (setTimeout's granularity) still counts from its scheduled time.
  const tick = (): void => {
    if (!running) return;
    dispatchDue();
    const wait = origin + schedule.peek() - performance.now();
    timer = setTimeout(tick, Math.max(1, Math.floor(wait)));
  };
  tick();

  return {
    nextWindow: () => windows.next(),
    stop: async () => {
      running = false;
      if (timer) clearTimeout(timer);
      backlog.length = 0;
      if (inflight > 0) {
        await waitAtMost(
          new Promise<void>((resolve) => {
            settle = resolve;
          }),
          STOP_GRACE_MS,
        );
      }
      for (const client of all) client.close();
      return counters;
    },
  };
}

/** Waits for `promise`, or `ms` at most, without leaving a timer behind. */
async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise,
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
