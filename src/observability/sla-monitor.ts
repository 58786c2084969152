import type { SlaSpec } from '../config/model-config.ts';
import type { RequestRecord } from './request-record.ts';
import { LatencyWindow, percentilesOf } from './latency-window.ts';

export interface SlaStatus {
  model: string;
  window_s: number;
  /** Requests in the current and the last completed window. */
  samples: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  /** sla.p99_ms, or null when model.yaml sets no budget. */
  budget_p99_ms: number | null;
  /** Whether the rolling p99 is within budget now (null without a budget or without samples). */
  met: boolean | null;
  /** Consecutive completed windows whose p99 missed the budget. */
  consecutive_breaches: number;
  /** True once the budget was missed for sla.breach_windows consecutive windows, until a window meets it. */
  breached: boolean;
  breaches_total: number;
}

export interface SlaBreach {
  model: string;
  p99Ms: number;
  budgetMs: number;
  windows: number;
}

interface ModelWindows {
  spec: SlaSpec | undefined;
  windowMs: number;
  windowStart: number;
  current: LatencyWindow;
  previous: LatencyWindow;
  consecutive: number;
  breached: boolean;
  breaches: number;
}

const DEFAULT_WINDOW_S = 10;
const WINDOW_CAPACITY = 16_384;
const sameSpec = (a: SlaSpec | undefined, b: SlaSpec | undefined): boolean =>
  a === b ||
  (a !== undefined &&
    b !== undefined &&
    a.p99Ms === b.p99Ms &&
    a.windowS === b.windowS &&
    a.breachWindows === b.breachWindows);
const round = (ms: number): number | null => (Number.isNaN(ms) ? null : Math.round(ms * 1000) / 1000);

/**
 * Rolling latency percentiles per model over fixed windows (sla.window_s). A window that closes with its
 * p99 over sla.p99_ms counts as a breach window; sla.breach_windows of them in a row raise a breach
 * (reported to `onBreach`: a warning log and a metric), cleared by the next window that meets the budget.
 */
export class SlaMonitor {
  private readonly models = new Map<string, ModelWindows>();
  private readonly breachListeners: ((breach: SlaBreach) => void)[] = [];

  constructor(
    private readonly specOf: (model: string) => SlaSpec | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {}

  onBreach(listener: (breach: SlaBreach) => void): void {
    this.breachListeners.push(listener);
  }

  private windowsOf(model: string): ModelWindows {
    let found = this.models.get(model);
    const spec = this.specOf(model);
    if (!found || !sameSpec(found.spec, spec)) {
      found = {
        spec,
        windowMs: (spec?.windowS ?? DEFAULT_WINDOW_S) * 1000,
        windowStart: this.now(),
        current: new LatencyWindow(WINDOW_CAPACITY),
        previous: new LatencyWindow(WINDOW_CAPACITY),
        consecutive: 0,
        breached: false,
        breaches: found?.breaches ?? 0,
      };
      this.models.set(model, found);
    }
    return found;
  }

  record(record: RequestRecord): void {
    if (record.outcome !== 'success') return;
    const w = this.windowsOf(record.model);
    this.roll(w, record.model);
    w.current.add(record.durationMs);
  }

  /** Closes every window that has ended (an idle period closes as empty windows, which neither breach nor clear). */
  private roll(w: ModelWindows, model: string): void {
    const now = this.now();
    if (now < w.windowStart + w.windowMs) return;
    this.closeWindow(w, model);
    const elapsed = Math.floor((now - w.windowStart) / w.windowMs);
    if (elapsed > 0) {
      if (elapsed > 1) w.previous.clear();
      w.windowStart += elapsed * w.windowMs;
    }
  }

  private closeWindow(w: ModelWindows, model: string): void {
    const spec = w.spec;
    if (spec && w.current.count > 0) {
      const [p99] = w.current.percentiles([0.99]);
      if (p99! > spec.p99Ms) {
        w.consecutive++;
        if (w.consecutive >= spec.breachWindows) {
          w.breaches++;
          w.breached = true;
          for (const listener of this.breachListeners)
            listener({ model, p99Ms: p99!, budgetMs: spec.p99Ms, windows: w.consecutive });
        }
      } else {
        w.consecutive = 0;
        w.breached = false;
      }
    }
    const closed = w.current;
    w.current = w.previous;
    w.current.clear();
    w.previous = closed;
  }

  /** Breach windows counted so far, per model. */
  breachCounts(): Map<string, number> {
    return new Map([...this.models].map(([model, w]) => [model, w.breaches]));
  }

  /** The request latencies (milliseconds) of the current and the last completed window, as status() uses them. */
  samples(model: string): Float64Array {
    const w = this.windowsOf(model);
    this.roll(w, model);
    const previous = w.previous.values();
    const all = new Float64Array(previous.length + w.current.count);
    all.set(previous);
    all.set(w.current.values(), previous.length);
    return all;
  }

  status(model: string): SlaStatus {
    const all = this.samples(model);
    const w = this.windowsOf(model);
    const [p50, p95, p99] = percentilesOf(all, [0.5, 0.95, 0.99]);
    const budget = w.spec?.p99Ms ?? null;
    const p99ms = round(p99!);
    return {
      model,
      window_s: w.windowMs / 1000,
      samples: w.current.count + w.previous.count,
      p50_ms: round(p50!),
      p95_ms: round(p95!),
      p99_ms: p99ms,
      budget_p99_ms: budget,
      met: budget === null || p99ms === null ? null : p99ms <= budget,
      consecutive_breaches: w.consecutive,
      breached: w.breached,
      breaches_total: w.breaches,
    };
  }
}
