import type { ResponseCache } from './response-cache.ts';

export interface MemoryCacheOptions {
  maxEntries: number;
  maxBytes: number;
  ttlMs: number;
  /** Injected clock (milliseconds) for tests. */
  now?: () => number;
}

interface Entry {
  value: string;
  bytes: number;
  expiresAt: number;
}

/** In-process LRU bounded by entries and bytes (keys and values counted as UTF-16), with a TTL per entry. */
export class MemoryCache implements ResponseCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  hits = 0;
  misses = 0;
  private readonly now: () => number;

  constructor(private readonly options: MemoryCacheOptions) {
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }

  get(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) {
      this.misses++;
      return undefined;
    }
    if (entry.expiresAt <= this.now()) {
      this.remove(key, entry);
      this.misses++;
      return undefined;
    }
    // Map keeps insertion order: re-inserting makes this the most recently used entry.
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.hits++;
    return entry.value;
  }

  set(key: string, value: string): void {
    const bytes = (key.length + value.length) * 2;
    if (bytes > this.options.maxBytes) return;
    const existing = this.entries.get(key);
    if (existing) this.remove(key, existing);
    this.entries.set(key, { value, bytes, expiresAt: this.now() + this.options.ttlMs });
    this.bytes += bytes;
    while (this.entries.size > this.options.maxEntries || this.bytes > this.options.maxBytes) {
      const oldest = this.entries.keys().next().value as string;
      this.remove(oldest, this.entries.get(oldest)!);
    }
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  close(): void {
    this.clear();
  }
}
