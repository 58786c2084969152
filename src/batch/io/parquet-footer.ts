import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { CaliperError } from '../../errors.ts';
import { copyBytes } from './file-bytes.ts';

/**
 * Two Parquet files joined into one at the footer, without decoding or re-encoding a page: the first file's bytes up
 * to its footer, the second file's row groups after them (its bytes between the leading 'PAR1' and its footer), and one
 * FileMetaData listing the row groups of both, the second file's absolute offsets shifted by where its bytes now lie.
 *
 * The footer is Thrift compact protocol. It is walked, not decoded: the joined FileMetaData is the first file's bytes
 * with num_rows and the row_groups list's header rewritten, and the second file's row-group bytes appended to that list
 * with each absolute offset (and ordinal) re-encoded in place. Every other byte (statistics, encodings, size
 * statistics, fields this code does not know) is copied as the writer wrote it, each field keeping its wire type, which
 * is also why no library's footer reader-writer is used: hyparquet-writer picks a field's wire type from the JavaScript
 * value. Decoding both footers (2.5-3 KB each, 1M rows) into a tree of bigints and encoding the joined one took 9 ms of
 * a cold 37 ms join; walking them takes under 1 ms.
 */

/** Thrift compact protocol wire types. */
export const STOP = 0;
const TRUE = 1;
const FALSE = 2;
const BYTE = 3;
export const I16 = 4;
export const I32 = 5;
export const I64 = 6;
const DOUBLE = 7;
export const BINARY = 8;
export const LIST = 9;
const SET = 10;
const MAP = 11;
export const STRUCT = 12;
const UUID = 13;

/** The footer could not be read, or the two files cannot be joined (the message says which field and why). */
export class ParquetJoinError extends CaliperError {
  constructor(message: string) {
    super('CALIPER_PARQUET_JOIN_REFUSED', message);
    this.name = 'ParquetJoinError';
  }
}

/** Reads Thrift compact values from `bytes` at `at`, skipping what its caller does not ask for. */
export class Walker {
  constructor(
    readonly bytes: Uint8Array,
    public at = 0,
  ) {}

  byte(): number {
    if (this.at >= this.bytes.length) throw new ParquetJoinError(`footer ended at byte ${this.at} inside a value`);
    return this.bytes[this.at++]!;
  }

  /** An unsigned varint: exact up to 2^53 (integer() refuses more), approximate above (values only skipped). */
  varint(): number {
    const first = this.byte();
    if (first < 0x80) return first;
    let result = first & 0x7f;
    for (let scale = 128, i = 1; ; scale *= 128, i++) {
      const b = this.byte();
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      if (i === 9) throw new ParquetJoinError(`varint longer than 10 bytes at byte ${this.at}`);
    }
  }

  /** An I16, I32 or I64 field's value (the zigzag varint), as a number. */
  integer(type: number, what: string): number {
    if (type !== I16 && type !== I32 && type !== I64) throw new ParquetJoinError(`${what}: expected an integer`);
    const n = this.varint();
    if (n > Number.MAX_SAFE_INTEGER) throw new ParquetJoinError(`${what}: ${n} is beyond 2^53`);
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  }

  /** A list's header: its element type and size. */
  list(type: number, what: string): { elementType: number; size: number } {
    if (type !== LIST) throw new ParquetJoinError(`${what}: expected a list`);
    const header = this.byte();
    return { elementType: header & 0x0f, size: header >> 4 === 15 ? this.varint() : header >> 4 };
  }

  skip(type: number, inList = false): void {
    switch (type) {
      case TRUE:
      case FALSE:
        // In a struct the field header holds the value; in a list each element is one byte.
        if (inList) this.byte();
        return;
      case BYTE:
        this.byte();
        return;
      case I16:
      case I32:
      case I64:
        this.varint();
        return;
      case DOUBLE:
        this.take(8);
        return;
      case UUID:
        this.take(16);
        return;
      case BINARY:
        this.take(this.varint());
        return;
      case LIST:
      case SET: {
        const header = this.byte();
        const size = header >> 4 === 15 ? this.varint() : header >> 4;
        for (let i = 0; i < size; i++) this.skip(header & 0x0f, true);
        return;
      }
      case MAP: {
        const size = this.varint();
        if (size === 0) return;
        const kinds = this.byte();
        for (let i = 0; i < size; i++) {
          this.skip(kinds >> 4, true);
          this.skip(kinds & 0x0f, true);
        }
        return;
      }
      case STRUCT:
        for (let header = this.byte(); (header & 0x0f) !== STOP; header = this.byte()) {
          if (header >> 4 === 0) this.varint();
          this.skip(header & 0x0f);
        }
        return;
      default:
        throw new ParquetJoinError(`unknown Thrift compact type ${type} at byte ${this.at}`);
    }
  }

  private take(n: number): void {
    if (this.at + n > this.bytes.length) throw new ParquetJoinError(`footer ended inside a ${n}-byte value`);
    this.at += n;
  }

  /** A BINARY value as UTF-8 text. */
  string(): string {
    const length = this.varint();
    if (this.at + length > this.bytes.length) throw new ParquetJoinError(`footer ended inside a ${length}-byte value`);
    const text = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.at, length).toString('utf8');
    this.at += length;
    return text;
  }

  /** A struct's fields up to its STOP: `visit` is called at each field's value and must read or skip it. */
  fields(visit: (id: number, type: number) => void): void {
    let id = 0;
    for (;;) {
      const header = this.byte();
      const type = header & 0x0f;
      if (type === STOP) return;
      id = header >> 4 === 0 ? this.integer(I16, 'field id') : id + (header >> 4);
      visit(id, type);
    }
  }
}

/** `n` (an unsigned integer up to 2^53) as a varint. */
export function varint(n: number): Uint8Array {
  const out: number[] = [];
  let v = n;
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** `n` as a Thrift compact integer (zigzag varint). */
export function zigzag(n: number): Uint8Array {
  return varint(n >= 0 ? 2 * n : -2 * n - 1);
}

/** Bytes [start, end) of a footer replaced by `bytes` (start = end: inserted). */
export interface Edit {
  start: number;
  end: number;
  bytes: Uint8Array;
}

/** Bytes [from, to) of `bytes` with `edits` (inside that range, in order, not overlapping) applied. */
export function spliced(bytes: Uint8Array, from: number, to: number, edits: readonly Edit[]): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let at = from;
  for (const edit of edits) {
    parts.push(bytes.subarray(at, edit.start), edit.bytes);
    at = edit.end;
  }
  parts.push(bytes.subarray(at, to));
  return parts;
}

/** One top-level FileMetaData field: its wire type and where its value lies in the footer. */
export interface FieldRange {
  type: number;
  start: number;
  end: number;
}

/** A Parquet file's footer: where its FileMetaData starts (byte offset), its bytes, its top-level fields. */
export interface Footer {
  start: number;
  bytes: Buffer;
  fields: Map<number, FieldRange>;
}

/** FileMetaData fields (parquet.thrift). */
export const META = { schema: 2, numRows: 3, rowGroups: 4, keyValue: 5, encryption: 8, signingKey: 9 } as const;
/** RowGroup fields. */
export const ROW_GROUP = {
  columns: 1,
  totalByteSize: 2,
  numRows: 3,
  sortingColumns: 4,
  fileOffset: 5,
  totalCompressedSize: 6,
  ordinal: 7,
} as const;
/** ColumnChunk fields. */
const CHUNK = {
  filePath: 1,
  fileOffset: 2,
  metaData: 3,
  offsetIndex: 4,
  columnIndex: 6,
  cryptoMetadata: 8,
  encryptedMetaData: 9,
} as const;
/** ColumnMetaData's codec field. */
const COLUMN_CODEC = 4;
/** ColumnMetaData fields holding an absolute file offset. */
const COLUMN_OFFSETS: readonly number[] = [9, 10, 11, 14];

/** Where the footer (FileMetaData) of the open Parquet file `fd` starts, and its length in bytes, from the file's tail. */
export function footerBounds(fd: number, path: string): { start: number; length: number } {
  const size = fstatSync(fd).size;
  const tail = Buffer.alloc(8);
  if (size < 12 || readSync(fd, tail, 0, 8, size - 8) !== 8 || tail.toString('latin1', 4) !== 'PAR1')
    throw new ParquetJoinError(`${path}: not a Parquet file (no 'PAR1' at its end)`);
  const length = tail.readUInt32LE(0);
  const start = size - 8 - length;
  if (start < 4) throw new ParquetJoinError(`${path}: footer length ${length} larger than the file`);
  return { start, length };
}

/**
 * Reads the footer of the open Parquet file `fd` and walks its FileMetaData once, whole (a footer this code cannot
 * read is refused before any byte is written): `rowGroups`, where given, reads the row_groups list's value.
 */
export function readFooter(fd: number, path: string, rowGroups?: (walker: Walker, type: number) => void): Footer {
  const { start, length } = footerBounds(fd, path);
  const bytes = Buffer.alloc(length);
  if (readSync(fd, bytes, 0, length, start) !== length)
    throw new ParquetJoinError(`${path}: ended while its footer was read`);
  const walker = new Walker(bytes);
  const fields = new Map<number, FieldRange>();
  walker.fields((id, type) => {
    const at = walker.at;
    if (id === META.rowGroups && rowGroups) rowGroups(walker, type);
    else walker.skip(type);
    if (fields.has(id)) throw new ParquetJoinError(`${path}: FileMetaData field ${id} appears twice`);
    fields.set(id, { type, start: at, end: walker.at });
  });
  if (walker.at !== length)
    throw new ParquetJoinError(`${path}: footer has ${length - walker.at} bytes after its FileMetaData`);
  return { start, bytes, fields };
}

export function required(footer: Footer, id: number, what: string): FieldRange {
  const range = footer.fields.get(id);
  if (!range) throw new ParquetJoinError(`${what}: missing`);
  return range;
}

/** The header of a row_groups list at the walker: its size (its items follow). */
export function rowGroupsHeader(walker: Walker, type: number, what: string): number {
  const { elementType, size } = walker.list(type, what);
  if (size > 0 && elementType !== STRUCT) throw new ParquetJoinError(`${what}: expected a list of structs`);
  return size;
}

export function numRows(footer: Footer, what: string): number {
  const range = required(footer, META.numRows, what);
  return new Walker(footer.bytes, range.start).integer(range.type, what);
}

/** Each row group's num_rows, in file order, read from the footer of Parquet file `path`. */
export function parquetRowGroupRows(path: string): number[] {
  const rows: number[] = [];
  const fd = openSync(path, 'r');
  try {
    readFooter(fd, path, (walker, type) => {
      const size = rowGroupsHeader(walker, type, `${path} row_groups`);
      for (let g = 0; g < size; g++) {
        let n: number | undefined;
        walker.fields((id, t) => {
          if (id === ROW_GROUP.numRows) n = walker.integer(t, `row group ${g} num_rows`);
          else walker.skip(t);
        });
        if (n === undefined) throw new ParquetJoinError(`row group ${g}: no num_rows`);
        rows.push(n);
      }
    });
  } finally {
    closeSync(fd);
  }
  return rows;
}

/** One row group as shiftRowGroups walked it: where its columns list's items lie in the footer, and its sizes. */
export interface WalkedRowGroup {
  numRows: number;
  totalByteSize: number;
  totalCompressedSize?: number;
  fileOffset?: number;
  /** Footer range of the column chunk structs (the columns list's items), and how many there are. */
  columnsStart: number;
  columnsEnd: number;
  columnCount: number;
  /** Footer range of the sorting_columns field's value, where the writer wrote one. */
  sortingColumns?: FieldRange;
  ordinal: boolean;
}

/** A row_groups list walked for joining: its size, where its items start and end, and the edits to them. */
export interface ShiftedRowGroups {
  size: number;
  itemsStart: number;
  end: number;
  edits: Edit[];
  groups: WalkedRowGroup[];
  /** Every column chunk's compression codec (ColumnMetaData.codec, parquet.thrift's CompressionCodec). */
  codecs: Set<number>;
}

/**
 * Walks the row_groups list at the walker (the second file's), noting an edit for each absolute offset, moved by
 * `delta` bytes, and each ordinal, moved by `ordinalDelta`. A chunk with an offset index is refused where its bytes
 * move (`delta` not 0): the index lists its pages' absolute offsets inside the file body.
 */
export function shiftRowGroups(walker: Walker, type: number, delta: number, ordinalDelta: number): ShiftedRowGroups {
  const size = rowGroupsHeader(walker, type, 'row_groups');
  const itemsStart = walker.at;
  const edits: Edit[] = [];
  const groups: WalkedRowGroup[] = [];
  const codecs = new Set<number>();
  const moved = (type: number, what: string, by: number, positiveOnly: boolean): number => {
    const start = walker.at;
    const value = walker.integer(type, what);
    if (!positiveOnly || value > 0) edits.push({ start, end: walker.at, bytes: zigzag(value + by) });
    return value;
  };
  for (let g = 0; g < size; g++) {
    const group: Partial<WalkedRowGroup> & { ordinal: boolean } = { ordinal: false };
    walker.fields((id, type) => {
      const what = `row group ${g}`;
      if (id === ROW_GROUP.fileOffset) group.fileOffset = moved(type, `${what} file_offset`, delta, true) + delta;
      else if (id === ROW_GROUP.ordinal) {
        moved(type, `${what} ordinal`, ordinalDelta, false);
        group.ordinal = true;
      } else if (id === ROW_GROUP.numRows) group.numRows = walker.integer(type, `${what} num_rows`);
      else if (id === ROW_GROUP.totalByteSize) group.totalByteSize = walker.integer(type, `${what} total_byte_size`);
      else if (id === ROW_GROUP.totalCompressedSize)
        group.totalCompressedSize = walker.integer(type, `${what} total_compressed_size`);
      else if (id === ROW_GROUP.sortingColumns) {
        const start = walker.at;
        walker.skip(type);
        group.sortingColumns = { type, start, end: walker.at };
      } else if (id === ROW_GROUP.columns) {
        const list = walker.list(type, `${what} columns`);
        group.columnsStart = walker.at;
        group.columnCount = list.size;
        for (let c = 0; c < list.size; c++) {
          if (list.elementType !== STRUCT) throw new ParquetJoinError(`${what} column ${c}: expected a struct`);
          walker.fields((chunkId, chunkType) => {
            if (chunkId === CHUNK.filePath)
              throw new ParquetJoinError(`${what} column ${c}: its data lies in another file (file_path)`);
            if (chunkId === CHUNK.cryptoMetadata || chunkId === CHUNK.encryptedMetaData)
              throw new ParquetJoinError(`${what} column ${c}: encrypted`);
            // DuckDB (1.5) writes no offset index; a writer that does gets the refusal, and the job its slower path.
            if (chunkId === CHUNK.offsetIndex && delta !== 0)
              throw new ParquetJoinError(`${what} column ${c}: an offset index holds absolute page offsets`);
            if (chunkId === CHUNK.fileOffset || chunkId === CHUNK.columnIndex || chunkId === CHUNK.offsetIndex)
              moved(chunkType, `${what} column ${c} field ${chunkId}`, delta, true);
            else if (chunkId === CHUNK.metaData) {
              if (chunkType !== STRUCT) throw new ParquetJoinError(`${what} column ${c} meta_data: expected a struct`);
              walker.fields((metaId, metaType) => {
                if (COLUMN_OFFSETS.includes(metaId))
                  moved(metaType, `${what} column ${c} meta_data field ${metaId}`, delta, true);
                else if (metaId === COLUMN_CODEC) codecs.add(walker.integer(metaType, `${what} column ${c} codec`));
                else walker.skip(metaType);
              });
            } else walker.skip(chunkType);
          });
        }
        group.columnsEnd = walker.at;
      } else walker.skip(type);
    });
    if (group.columnsStart === undefined) throw new ParquetJoinError(`row group ${g}: no columns`);
    if (group.numRows === undefined || group.totalByteSize === undefined)
      throw new ParquetJoinError(`row group ${g}: no num_rows or total_byte_size`);
    groups.push(group as WalkedRowGroup);
  }
  return { size, itemsStart, end: walker.at, edits, groups, codecs };
}

/** A list header for `size` structs. */
export function structListHeader(size: number): Uint8Array {
  return size < 15 ? Uint8Array.of((size << 4) | STRUCT) : Uint8Array.of(0xf0 | STRUCT, ...varint(size));
}

function sameField(a: Footer, b: Footer, id: number): boolean {
  const ra = a.fields.get(id);
  const rb = b.fields.get(id);
  if (!ra || !rb) return ra === rb;
  return ra.type === rb.type && a.bytes.subarray(ra.start, ra.end).equals(b.bytes.subarray(rb.start, rb.end));
}

/**
 * Appends the rows of Parquet file `second` to Parquet file `first`, in place: `first` then holds its own row groups,
 * then `second`'s, under one footer (num_rows summed). Both must have been written alike (same schema and key/value
 * metadata, unencrypted, no column data in other files); otherwise throws ParquetJoinError before `first` is changed.
 * Returns the joined file's row groups and rows.
 */
export function appendParquetFile(first: string, second: string): { rowGroups: number; rows: number } {
  const a = openSync(first, 'r+');
  const b = openSync(second, 'r');
  try {
    const fa = readFooter(a, first);
    const rowsRange = required(fa, META.numRows, 'num_rows');
    const listA = required(fa, META.rowGroups, `${first} row_groups`);
    const groupsA = new Walker(fa.bytes, listA.start);
    const sizeA = rowGroupsHeader(groupsA, listA.type, `${first} row_groups`);
    let groupsB: ShiftedRowGroups | undefined;
    // The second file's byte 4 (after its 'PAR1') lands where the first file's footer started.
    const fb = readFooter(b, second, (walker, type) => {
      groupsB = shiftRowGroups(walker, type, fa.start - 4, sizeA);
    });
    for (const [id, what] of [
      [META.schema, 'schema'],
      [META.keyValue, 'key/value metadata'],
    ] as const)
      if (!sameField(fa, fb, id)) throw new ParquetJoinError(`the two files' ${what} differ`);
    if ([META.encryption, META.signingKey].some((id) => fa.fields.has(id) || fb.fields.has(id)))
      throw new ParquetJoinError('an encrypted file cannot be joined');
    if (!groupsB) throw new ParquetJoinError(`${second} row_groups: missing`);
    const rows = numRows(fa, 'num_rows') + numRows(fb, 'num_rows');
    const edits: Edit[] = [
      { start: rowsRange.start, end: rowsRange.end, bytes: zigzag(rows) },
      { start: listA.start, end: groupsA.at, bytes: structListHeader(sizeA + groupsB.size) },
      {
        start: listA.end,
        end: listA.end,
        bytes: Buffer.concat(spliced(fb.bytes, groupsB.itemsStart, groupsB.end, groupsB.edits)),
      },
    ].sort((x, y) => x.start - y.start);
    const tail = Buffer.alloc(8);
    const footer = Buffer.concat([...spliced(fa.bytes, 0, fa.bytes.length, edits), tail]);
    footer.writeUInt32LE(footer.length - 8, footer.length - 8);
    footer.write('PAR1', footer.length - 4, 'latin1');
    copyBytes(
      b,
      4,
      fb.start,
      a,
      fa.start,
      (at) => new ParquetJoinError(`${second}: ended at byte ${at} while being read`),
    );
    const end = fa.start + fb.start - 4;
    writeSync(a, footer, 0, footer.length, end);
    // A joined footer shorter than the first file's (one whose list header was written long for a short list)
    // leaves none of its bytes behind.
    if (end + footer.length < fa.start + fa.bytes.length + 8) ftruncateSync(a, end + footer.length);
    return { rowGroups: sizeA + groupsB.size, rows };
  } finally {
    closeSync(a);
    closeSync(b);
  }
}
