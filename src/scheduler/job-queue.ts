import Denque from 'denque';

/**
 * A FIFO of queued items with O(1) push, shift and peek at any offset: denque's ring buffer (the deque ioredis uses),
 * instead of Array.prototype.shift's O(n) or a hand-kept head index and its compaction.
 */
export class JobQueue<T> {
  private readonly items = new Denque<T>();

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** The item `offset` places behind the head (0: the head), or undefined past the end. */
  peek(offset = 0): T | undefined {
    return this.items.peekAt(offset);
  }

  shift(): T | undefined {
    return this.items.shift();
  }

  /** Removes and returns the items `drop` selects, keeping the others in order. */
  removeWhere(drop: (item: T) => boolean): T[] {
    const removed: T[] = [];
    const kept: T[] = [];
    for (const item of this.items.toArray()) (drop(item) ? removed : kept).push(item);
    if (removed.length > 0) {
      this.items.clear();
      for (const item of kept) this.items.push(item);
    }
    return removed;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.items.length; i++) yield this.items.peekAt(i) as T;
  }
}
