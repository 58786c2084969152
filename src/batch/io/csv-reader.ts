import { createReadStream, type ReadStream } from 'node:fs';
import { CaliperError } from '../../errors.ts';
import { RowBuffer, type ReadBlock } from './row-buffer.ts';
import type { ColumnKind, RowRange, RowSource, SourceBatch, SourceColumn, SourceRow } from './source-row.ts';

/** A record with a quoted field, parsed from `pos`; undefined when the data ends inside it (more to come). */
function parseQuotedRecord(data: string, pos: number, final: boolean): { fields: string[]; next: number } | undefined {
  const fields: string[] = [];
  let i = pos;
  for (;;) {
    if (data[i] === '"') {
      let value = '';
      let j = i + 1;
      for (;;) {
        const quote = data.indexOf('"', j);
        if (quote === -1) {
          if (!final) return undefined;
          throw new Error('unterminated quoted field');
        }
        value += data.slice(j, quote);
        if (data[quote + 1] === '"') { value += '"'; j = quote + 2; continue; }
        if (quote + 1 >= data.length && !final) return undefined;
        i = quote + 1;
        break;
      }
      fields.push(value);
    } else {
      let end = i;
      while (end < data.length && data[end] !== ',' && data[end] !== '\n' && data[end] !== '\r') end++;
      if (end >= data.length && !final) return undefined;
      fields.push(data.slice(i, end));
      i = end;
    }
    if (data[i] === ',') { i++; continue; }
    if (data[i] === '\r') i++;
    if (data[i] === '\n') return { fields, next: i + 1 };
    if (i >= data.length) {
      if (!final) return undefined;
      return { fields, next: i };
    }
    throw new Error(`unexpected character ${JSON.stringify(data[i])} after a quoted field`);
  }
}

/** RFC 4180 CSV records from text arriving in pieces; unquoted lines take a split() fast path. */
export class CsvRecordParser {
  private pending = '';

  push(text: string, final = false): string[][] {
    const data = this.pending + text;
    const records: string[][] = [];
    let pos = 0;
    while (pos < data.length) {
      const newline = data.indexOf('\n', pos);
      if (newline === -1 && !final) break;
      const lineEnd = newline === -1 ? data.length : newline;
      let line = data.slice(pos, lineEnd);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (!line.includes('"')) {
        if (line.length > 0) records.push(line.split(','));
        pos = lineEnd + 1;
        continue;
      }
      const parsed = parseQuotedRecord(data, pos, final);
      if (!parsed) break;
      records.push(parsed.fields);
      pos = parsed.next;
    }
    this.pending = pos >= data.length ? '' : data.slice(pos);
    return records;
  }
}

const INTEGER_TEXT = /^-?\d{1,15}$/;
const NUMBER_TEXT = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

/** integer or double when every non-empty value of the first rows is one, else string. */
function inferKind(rows: readonly SourceRow[], name: string): ColumnKind {
  let integer = true;
  let seen = false;
  for (const row of rows) {
    const value = row[name];
    if (typeof value !== 'string') continue;
    seen = true;
    if (!NUMBER_TEXT.test(value)) return 'string';
    if (integer && !INTEGER_TEXT.test(value)) integer = false;
  }
  return !seen ? 'string' : integer ? 'integer' : 'double';
}

/** CSV with a header row; every value is text ('' reads as null), typed later by the model's field types. */
export class CsvReader implements RowSource {
  columns: SourceColumn[] = [];
  private buffer!: RowBuffer;

  private constructor(private readonly file: string, private readonly stream: ReadStream) {}

  static async open(file: string, range: RowRange): Promise<CsvReader> {
    const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
    const reader = new CsvReader(file, stream);
    await reader.start(range);
    return reader;
  }

  private async start(range: RowRange): Promise<void> {
    const parser = new CsvRecordParser();
    const iterator = this.stream[Symbol.asyncIterator]() as AsyncIterator<string>;
    let header: string[] | undefined;
    let index = 0;
    let done = false;
    const pull = async (): Promise<string[][] | null> => {
      if (done) return null;
      let next: IteratorResult<string>;
      try {
        next = await iterator.next();
      } catch (error) {
        throw new CaliperError('CALIPER_INVALID_INPUT', `${this.file}: ${(error as Error).message}`);
      }
      try {
        if (next.done) { done = true; return parser.push('', true); }
        return parser.push(next.value);
      } catch (error) {
        throw new CaliperError('CALIPER_INVALID_INPUT', `${this.file}: row ${index + 1}: ${(error as Error).message}`);
      }
    };
    const produce = async (): Promise<ReadBlock | null> => {
      for (;;) {
        let records = await pull();
        if (records === null) return null;
        if (!header) {
          if (records.length === 0) continue;
          header = records[0]!;
          records = records.slice(1);
        }
        const rows: SourceRow[] = [];
        const width = header.length;
        const parseErrors = new Map<number, string>();
        for (const record of records) {
          if (index++ < range.start) continue;
          const row: SourceRow = {};
          for (let c = 0; c < width; c++) {
            const text = record[c];
            row[header[c]!] = text === undefined || text === '' ? null : text;
          }
          if (record.length !== width) parseErrors.set(rows.length, `expected ${width} CSV fields (as in the header), got ${record.length}`);
          rows.push(row);
        }
        if (rows.length > 0) return parseErrors.size > 0 ? { rows, parseErrors } : { rows };
      }
    };
    // The header is needed before the first batch to know the columns.
    const first = await produce();
    this.columns = (header ?? []).map((name) => ({ name, kind: inferKind(first?.rows ?? [], name), text: true }));
    this.buffer = RowBuffer.startingWith(first, produce, range.start, range.end - range.start);
  }

  next(maxRows: number): Promise<SourceBatch | null> {
    return this.buffer.next(maxRows);
  }

  async close(): Promise<void> {
    this.stream.destroy();
  }
}

/** Data records in a CSV file (header excluded). */
export async function countCsvRows(file: string): Promise<number> {
  const parser = new CsvRecordParser();
  let count = -1;
  for await (const text of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) count += parser.push(text as string).length;
  count += parser.push('', true).length;
  return Math.max(0, count);
}
