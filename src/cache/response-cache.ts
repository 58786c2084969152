/** A store of serialized responses keyed by model, version and the canonical request. */
export interface ResponseCache {
  /** The cached value, or undefined on a miss (an unreachable backend counts as a miss). */
  get(key: string): string | undefined | Promise<string | undefined>;
  set(key: string, value: string): void | Promise<void>;
  /** Drops every entry (the served version changed). */
  clear(): void | Promise<void>;
  readonly hits: number;
  readonly misses: number;
  /** Entries held now (memory backend) or last known (remote backends may not know). */
  readonly size: number;
  close(): void | Promise<void>;
}
