import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { CaliperError } from '../../errors.ts';
import { copyBytes } from './file-bytes.ts';

/**
 * Two Parquet files joined into one at the footer, without decoding or re-encoding a page: the first file's bytes up
 * to its footer, the second file's row groups after them (its bytes between the leading 'PAR1' and its footer), and one
 * FileMetaData listing the row groups of both, the second file's absolute offsets shifted by where its bytes now lie.
 *
 * The footer is Thrift compact protocol. It is decoded here into a generic tree that keeps every field's wire type, so
 * fields this code does not know (statistics, encodings, size statistics, future fields) are written back unchanged. A
 * library was looked at first: hyparquet reads the footer into named objects, and hyparquet-writer's Thrift writer picks
 * each field's wire type from the JavaScript value (an integer number → I32, a bigint → I64), so an I16 field
 * (RowGroup.ordinal) or an I64 read back as a number would be written with another type than DuckDB wrote. Not
 * installed or timed: the type rule alone rules it out for a byte-faithful rewrite.
 */

const STOP = 0;
const TRUE = 1;
const FALSE = 2;
const BYTE = 3;
const I16 = 4;
const I32 = 5;
const I64 = 6;
const DOUBLE = 7;
const BINARY = 8;
const LIST = 9;
const SET = 10;
const MAP = 11;
const STRUCT = 12;
const UUID = 13;

/** One Thrift value as it was on the wire. Integers are bigints whatever their width. */
export type ThriftValue =
  | { type: typeof TRUE | typeof FALSE }
  | { type: typeof BYTE | typeof I16 | typeof I32 | typeof I64; value: bigint }
  | { type: typeof DOUBLE | typeof BINARY | typeof UUID; bytes: Uint8Array }
  | { type: typeof LIST | typeof SET; elementType: number; items: ThriftValue[] }
  | { type: typeof MAP; keyType: number; valueType: number; entries: [ThriftValue, ThriftValue][] }
  | { type: typeof STRUCT; fields: ThriftField[] };

export interface ThriftField {
  id: number;
  value: ThriftValue;
}

/** The footer could not be read, or the two files cannot be joined (the message says which field and why). */
export class ParquetJoinError extends CaliperError {
  constructor(message: string) {
    super('CALIPER_PARQUET_JOIN_REFUSED', message);
    this.name = 'ParquetJoinError';
  }
}

class Reader {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}

  byte(): number {
    if (this.at >= this.bytes.length) throw new ParquetJoinError(`footer ended at byte ${this.at} inside a value`);
    return this.bytes[this.at++]!;
  }

  varint(): bigint {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      if (shift > 63n) throw new ParquetJoinError(`varint longer than 10 bytes at byte ${this.at}`);
    }
  }

  zigzag(): bigint {
    const n = this.varint();
    return (n >> 1n) ^ -(n & 1n);
  }

  take(n: number): Uint8Array {
    if (this.at + n > this.bytes.length) throw new ParquetJoinError(`footer ended inside a ${n}-byte value`);
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  value(type: number, inList = false): ThriftValue {
    switch (type) {
      case TRUE:
      case FALSE:
        // In a struct the field header holds the value; in a list each element is one byte.
        if (inList) return { type: this.byte() === 1 ? TRUE : FALSE };
        return { type };
      case BYTE:
        return { type, value: BigInt((this.byte() << 24) >> 24) };
      case I16:
      case I32:
      case I64:
        return { type, value: this.zigzag() };
      case DOUBLE:
        return { type, bytes: this.take(8) };
      case UUID:
        return { type, bytes: this.take(16) };
      case BINARY:
        return { type, bytes: this.take(Number(this.varint())) };
      case LIST:
      case SET: {
        const header = this.byte();
        const size = header >> 4 === 15 ? Number(this.varint()) : header >> 4;
        const elementType = header & 0x0f;
        const items: ThriftValue[] = [];
        for (let i = 0; i < size; i++) items.push(this.value(elementType, true));
        return { type, elementType, items };
      }
      case MAP: {
        const size = Number(this.varint());
        if (size === 0) return { type, keyType: 0, valueType: 0, entries: [] };
        const kinds = this.byte();
        const entries: [ThriftValue, ThriftValue][] = [];
        for (let i = 0; i < size; i++) entries.push([this.value(kinds >> 4, true), this.value(kinds & 0x0f, true)]);
        return { type, keyType: kinds >> 4, valueType: kinds & 0x0f, entries };
      }
      case STRUCT:
        return { type, fields: this.fields() };
      default:
        throw new ParquetJoinError(`unknown Thrift compact type ${type} at byte ${this.at}`);
    }
  }

  fields(): ThriftField[] {
    const fields: ThriftField[] = [];
    let id = 0;
    for (;;) {
      const header = this.byte();
      const type = header & 0x0f;
      if (type === STOP) return fields;
      id = header >> 4 === 0 ? Number(this.zigzag()) : id + (header >> 4);
      fields.push({ id, value: this.value(type) });
    }
  }
}

class Writer {
  private chunks: number[] = [];

  bytes(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }

  byte(b: number): void {
    this.chunks.push(b & 0xff);
  }

  varint(n: bigint): void {
    let v = BigInt.asUintN(64, n);
    while (v >= 0x80n) {
      this.byte(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.byte(Number(v));
  }

  zigzag(n: bigint): void {
    this.varint((n << 1n) ^ (n >> 63n));
  }

  raw(bytes: Uint8Array): void {
    for (const b of bytes) this.chunks.push(b);
  }

  value(v: ThriftValue, inList = false): void {
    switch (v.type) {
      case TRUE:
      case FALSE:
        if (inList) this.byte(v.type === TRUE ? 1 : 0);
        return;
      case BYTE:
        this.byte(Number(v.value));
        return;
      case I16:
      case I32:
      case I64:
        this.zigzag(v.value);
        return;
      case DOUBLE:
      case UUID:
        this.raw(v.bytes);
        return;
      case BINARY:
        this.varint(BigInt(v.bytes.length));
        this.raw(v.bytes);
        return;
      case LIST:
      case SET:
        if (v.items.length < 15) this.byte((v.items.length << 4) | v.elementType);
        else {
          this.byte(0xf0 | v.elementType);
          this.varint(BigInt(v.items.length));
        }
        for (const item of v.items) this.value(item, true);
        return;
      case MAP:
        this.varint(BigInt(v.entries.length));
        if (v.entries.length === 0) return;
        this.byte((v.keyType << 4) | v.valueType);
        for (const [k, val] of v.entries) {
          this.value(k, true);
          this.value(val, true);
        }
        return;
      case STRUCT:
        this.fields(v.fields);
        return;
    }
  }

  fields(fields: readonly ThriftField[]): void {
    let last = 0;
    for (const { id, value } of fields) {
      const delta = id - last;
      if (delta > 0 && delta <= 15) this.byte((delta << 4) | value.type);
      else {
        this.byte(value.type);
        this.zigzag(BigInt(id));
      }
      this.value(value);
      last = id;
    }
    this.byte(STOP);
  }
}

/** Decodes a Thrift compact struct (a Parquet FileMetaData) into its fields. */
export function decodeThriftStruct(bytes: Uint8Array): ThriftField[] {
  const reader = new Reader(bytes);
  const fields = reader.fields();
  if (reader.at !== bytes.length)
    throw new ParquetJoinError(`footer has ${bytes.length - reader.at} bytes after its FileMetaData`);
  return fields;
}

/** Encodes fields as a Thrift compact struct (the inverse of decodeThriftStruct, byte for byte). */
export function encodeThriftStruct(fields: readonly ThriftField[]): Uint8Array {
  const writer = new Writer();
  writer.fields(fields);
  return writer.bytes();
}

function field(fields: readonly ThriftField[], id: number): ThriftValue | undefined {
  return fields.find((f) => f.id === id)?.value;
}

function structOf(value: ThriftValue | undefined, what: string): ThriftField[] {
  if (value?.type !== STRUCT) throw new ParquetJoinError(`${what}: expected a struct`);
  return value.fields;
}

function listOf(value: ThriftValue | undefined, what: string): ThriftValue[] {
  if (value?.type !== LIST) throw new ParquetJoinError(`${what}: expected a list`);
  return value.items;
}

function integer(value: ThriftValue | undefined, what: string): bigint {
  if (value === undefined || !('value' in value)) throw new ParquetJoinError(`${what}: expected an integer`);
  return value.value;
}

/** `fields` with the integer field `id` (if present and positive) moved by `delta`. */
function shift(fields: ThriftField[], id: number, delta: bigint): void {
  const f = fields.find((x) => x.id === id);
  if (f && 'value' in f.value && f.value.value > 0n) f.value = { ...f.value, value: f.value.value + delta };
}

/** A Parquet file's footer: where its FileMetaData starts (byte offset) and the FileMetaData's fields. */
interface Footer {
  start: number;
  fields: ThriftField[];
}

function readFooter(fd: number, path: string): Footer {
  const size = fstatSync(fd).size;
  const tail = Buffer.alloc(8);
  if (size < 12 || readSync(fd, tail, 0, 8, size - 8) !== 8 || tail.toString('latin1', 4) !== 'PAR1')
    throw new ParquetJoinError(`${path}: not a Parquet file (no 'PAR1' at its end)`);
  const length = tail.readUInt32LE(0);
  const start = size - 8 - length;
  if (start < 4) throw new ParquetJoinError(`${path}: footer length ${length} larger than the file`);
  const bytes = Buffer.alloc(length);
  readSync(fd, bytes, 0, length, start);
  return { start, fields: decodeThriftStruct(bytes) };
}

/** FileMetaData fields (parquet.thrift). */
const META = { schema: 2, numRows: 3, rowGroups: 4, keyValue: 5, encryption: 8, signingKey: 9 } as const;
/** RowGroup fields. */
const ROW_GROUP = { columns: 1, fileOffset: 5, ordinal: 7 } as const;
/** ColumnChunk fields. */
const CHUNK = { filePath: 1, fileOffset: 2, metaData: 3, offsetIndex: 4, columnIndex: 6 } as const;
/** ColumnMetaData fields holding an absolute file offset. */
const COLUMN_OFFSETS = [9, 10, 11, 14] as const;

function sameBytes(a: ThriftValue | undefined, b: ThriftValue | undefined): boolean {
  const ea = a === undefined ? undefined : Buffer.from(encodeThriftStruct([{ id: 1, value: a }]));
  const eb = b === undefined ? undefined : Buffer.from(encodeThriftStruct([{ id: 1, value: b }]));
  return ea === undefined || eb === undefined ? ea === eb : ea.equals(eb);
}

/** The second file's row groups, their absolute offsets moved by `delta` bytes and ordinals by `ordinalDelta`. */
function shiftedRowGroups(rowGroups: ThriftValue[], delta: bigint, ordinalDelta: bigint): ThriftValue[] {
  return rowGroups.map((group, g) => {
    const fields = structOf(group, `row group ${g}`).map((f) => ({ ...f }));
    shift(fields, ROW_GROUP.fileOffset, delta);
    const ordinal = fields.find((f) => f.id === ROW_GROUP.ordinal);
    if (ordinal && 'value' in ordinal.value)
      ordinal.value = { ...ordinal.value, value: ordinal.value.value + ordinalDelta };
    const columns = fields.find((f) => f.id === ROW_GROUP.columns);
    if (!columns) throw new ParquetJoinError(`row group ${g}: no columns`);
    columns.value = {
      type: LIST,
      elementType: STRUCT,
      items: listOf(columns.value, `row group ${g} columns`).map((chunk, c) => {
        const chunkFields = structOf(chunk, `row group ${g} column ${c}`).map((f) => ({ ...f }));
        if (field(chunkFields, CHUNK.filePath) !== undefined)
          throw new ParquetJoinError(`row group ${g} column ${c}: its data lies in another file (file_path)`);
        // An OffsetIndex lists its pages' absolute offsets inside the file body, which would need rewriting too.
        // DuckDB (1.5) writes none; a writer that does gets the refusal, and the job its slower path.
        if (field(chunkFields, CHUNK.offsetIndex) !== undefined)
          throw new ParquetJoinError(`row group ${g} column ${c}: an offset index holds absolute page offsets`);
        shift(chunkFields, CHUNK.fileOffset, delta);
        shift(chunkFields, CHUNK.columnIndex, delta);
        const meta = chunkFields.find((f) => f.id === CHUNK.metaData);
        if (meta) {
          const metaFields = structOf(meta.value, `row group ${g} column ${c} meta_data`).map((f) => ({ ...f }));
          for (const id of COLUMN_OFFSETS) shift(metaFields, id, delta);
          meta.value = { type: STRUCT, fields: metaFields };
        }
        return { type: STRUCT, fields: chunkFields } as ThriftValue;
      }),
    };
    return { type: STRUCT, fields } as ThriftValue;
  });
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
    const fb = readFooter(b, second);
    for (const [id, what] of [
      [META.schema, 'schema'],
      [META.keyValue, 'key/value metadata'],
    ] as const)
      if (!sameBytes(field(fa.fields, id), field(fb.fields, id)))
        throw new ParquetJoinError(`the two files' ${what} differ`);
    if ([META.encryption, META.signingKey].some((id) => field(fa.fields, id) ?? field(fb.fields, id)))
      throw new ParquetJoinError('an encrypted file cannot be joined');
    const groupsA = listOf(field(fa.fields, META.rowGroups), `${first} row_groups`);
    const groupsB = listOf(field(fb.fields, META.rowGroups), `${second} row_groups`);
    const rows =
      integer(field(fa.fields, META.numRows), 'num_rows') + integer(field(fb.fields, META.numRows), 'num_rows');
    // The second file's byte 4 (after its 'PAR1') lands where the first file's footer started.
    const delta = BigInt(fa.start - 4);
    const joined = fa.fields.map((f) => {
      if (f.id === META.numRows) return { id: f.id, value: { type: I64, value: rows } as ThriftValue };
      if (f.id === META.rowGroups)
        return {
          id: f.id,
          value: {
            type: LIST,
            elementType: STRUCT,
            items: [...groupsA, ...shiftedRowGroups(groupsB, delta, BigInt(groupsA.length))],
          } as ThriftValue,
        };
      return f;
    });
    const footer = encodeThriftStruct(joined);
    ftruncateSync(a, fa.start);
    copyBytes(
      b,
      4,
      fb.start,
      a,
      fa.start,
      (at) => new ParquetJoinError(`${second}: ended at byte ${at} while being read`),
    );
    let out = fa.start + fb.start - 4;
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(footer.length, 0);
    tail.write('PAR1', 4, 'latin1');
    out += writeSync(a, footer, 0, footer.length, out);
    writeSync(a, tail, 0, 8, out);
    return { rowGroups: groupsA.length + groupsB.length, rows: Number(rows) };
  } finally {
    closeSync(a);
    closeSync(b);
  }
}
