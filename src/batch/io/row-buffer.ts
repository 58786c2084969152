import type { SourceBatch, SourceRow } from './source-row.ts';

/** What a reader hands over: rows in file order, with parse errors by index into rows. */
export interface ReadBlock {
  rows: SourceRow[];
  parseErrors?: Map<number, string>;
}

/**
 * Turns a reader's blocks (whatever size the format yields) into batches of at most maxRows,
 * stopping after `limit` rows; keeps at most one block of leftovers.
 */
export class RowBuffer {
  private block: ReadBlock | undefined;
  private offset = 0;
  private delivered = 0;
  private exhausted = false;

  constructor(
    private readonly produce: () => Promise<ReadBlock | null>,
    private readonly firstRow: number,
    private readonly limit: number,
  ) {}

  /** A buffer whose first block was already read (readers peek at it to learn the columns), then `produce` for the rest. */
  static startingWith(
    first: ReadBlock | null,
    produce: () => Promise<ReadBlock | null>,
    firstRow: number,
    limit: number,
  ): RowBuffer {
    let pending: ReadBlock | null | undefined = first;
    return new RowBuffer(
      async () => {
        if (pending === undefined) return produce();
        const block = pending;
        pending = undefined;
        return block;
      },
      firstRow,
      limit,
    );
  }

  async next(maxRows: number): Promise<SourceBatch | null> {
    const want = Math.min(maxRows, this.limit - this.delivered);
    if (want <= 0) return null;
    const rows: SourceRow[] = [];
    let parseErrors: Map<number, string> | undefined;
    const firstRow = this.firstRow + this.delivered;
    while (rows.length < want) {
      if (!this.block || this.offset >= this.block.rows.length) {
        if (this.exhausted) break;
        const block = await this.produce();
        if (!block) {
          this.exhausted = true;
          break;
        }
        this.block = block;
        this.offset = 0;
        continue;
      }
      const take = Math.min(want - rows.length, this.block.rows.length - this.offset);
      const errors = this.block.parseErrors;
      if (errors && errors.size > 0) {
        for (let i = 0; i < take; i++) {
          const reason = errors.get(this.offset + i);
          if (reason !== undefined) (parseErrors ??= new Map()).set(rows.length + i, reason);
        }
      }
      if (this.offset === 0 && take === this.block.rows.length) rows.push(...this.block.rows);
      else for (let i = 0; i < take; i++) rows.push(this.block.rows[this.offset + i]!);
      this.offset += take;
    }
    this.delivered += rows.length;
    if (rows.length === 0) return null;
    return parseErrors ? { rows, firstRow, parseErrors } : { rows, firstRow };
  }
}
