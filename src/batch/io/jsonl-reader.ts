import { createReadStream, type ReadStream } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { RowBuffer, type ReadBlock } from './row-buffer.ts';
import type { ColumnKind, RowRange, RowSource, SourceBatch, SourceColumn, SourceRow } from './source-row.ts';

const BLOCK_ROWS = 2048;

function kindOfValue(value: unknown): ColumnKind | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'number') return 'double';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  return 'json';
}

/** One JSON object per line; blank lines are skipped; a line that is not a JSON object is a row error, not a crash. */
export class JsonlReader implements RowSource {
  readonly columns: SourceColumn[] = [];
  private readonly known = new Set<string>();
  private buffer!: RowBuffer;

  private constructor(private readonly stream: ReadStream, private readonly lines: Interface) {}

  static async open(file: string, range: RowRange): Promise<JsonlReader> {
    const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    const reader = new JsonlReader(stream, lines);
    await reader.start(range);
    return reader;
  }

  private learn(row: SourceRow): void {
    for (const key in row) {
      if (!this.known.has(key)) { this.known.add(key); this.columns.push({ name: key, kind: kindOfValue(row[key]) }); }
    }
  }

  private async start(range: RowRange): Promise<void> {
    const iterator = this.lines[Symbol.asyncIterator]();
    let index = 0;
    let done = false;
    const produce = async (): Promise<ReadBlock | null> => {
      const rows: SourceRow[] = [];
      const parseErrors = new Map<number, string>();
      while (!done && rows.length < BLOCK_ROWS) {
        const next = await iterator.next();
        if (next.done) { done = true; break; }
        const line = next.value;
        if (line.trim() === '') continue;
        if (index++ < range.start) continue;
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch (error) {
          parseErrors.set(rows.length, `invalid JSON: ${(error as Error).message}`);
          rows.push({});
          continue;
        }
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          parseErrors.set(rows.length, `expected a JSON object per line, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`);
          rows.push({});
          continue;
        }
        this.learn(value as SourceRow);
        rows.push(value as SourceRow);
      }
      if (rows.length === 0) return null;
      return parseErrors.size > 0 ? { rows, parseErrors } : { rows };
    };
    const first = await produce();
    this.buffer = RowBuffer.startingWith(first, produce, range.start, range.end - range.start);
  }

  next(maxRows: number): Promise<SourceBatch | null> {
    return this.buffer.next(maxRows);
  }

  async close(): Promise<void> {
    this.lines.close();
    this.stream.destroy();
  }
}

/** Non-blank lines in a JSONL file. */
export async function countJsonlRows(file: string): Promise<number> {
  let count = 0;
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 }), crlfDelay: Infinity });
  for await (const line of lines) if (line.trim() !== '') count++;
  return count;
}
