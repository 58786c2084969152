/**
 * A Thrift compact protocol codec for the tests: a Parquet footer decoded into a tree that keeps every field's wire type,
 * and encoded back byte for byte, to read what the join wrote and to craft the footers it must refuse. (The join itself,
 * src/batch/io/parquet-footer.ts, walks the bytes instead: decoding into bigints was 9 ms of a 37 ms join.)
 */

import { readFileSync, writeFileSync } from 'node:fs';

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

class ThriftError extends Error {}

class Reader {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}

  byte(): number {
    if (this.at >= this.bytes.length) throw new ThriftError(`footer ended at byte ${this.at} inside a value`);
    return this.bytes[this.at++]!;
  }

  varint(): bigint {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      if (shift > 63n) throw new ThriftError(`varint longer than 10 bytes at byte ${this.at}`);
    }
  }

  zigzag(): bigint {
    const n = this.varint();
    return (n >> 1n) ^ -(n & 1n);
  }

  take(n: number): Uint8Array {
    if (this.at + n > this.bytes.length) throw new ThriftError(`footer ended inside a ${n}-byte value`);
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
        throw new ThriftError(`unknown Thrift compact type ${type} at byte ${this.at}`);
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
    throw new ThriftError(`footer has ${bytes.length - reader.at} bytes after its FileMetaData`);
  return fields;
}

/** Encodes fields as a Thrift compact struct (the inverse of decodeThriftStruct, byte for byte). */
export function encodeThriftStruct(fields: readonly ThriftField[]): Uint8Array {
  const writer = new Writer();
  writer.fields(fields);
  return writer.bytes();
}

/** `fields`' field `id`. */
export function field(fields: readonly ThriftField[], id: number): ThriftValue | undefined {
  return fields.find((f) => f.id === id)?.value;
}

export function structFields(value: ThriftValue | undefined): ThriftField[] {
  if (value?.type !== STRUCT) throw new Error('expected a struct');
  return value.fields;
}

export function listItems(value: ThriftValue | undefined): ThriftValue[] {
  if (value?.type !== LIST) throw new Error('expected a list');
  return value.items;
}

export function integer(value: ThriftValue | undefined): bigint {
  if (value === undefined || !('value' in value)) throw new Error('expected an integer');
  return value.value;
}

export const THRIFT = { TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT, UUID } as const;

/** A Parquet file's footer: its FileMetaData bytes and where they start. */
export function footerOf(file: string): { bytes: Buffer; start: number } {
  const bytes = readFileSync(file);
  const length = bytes.readUInt32LE(bytes.length - 8);
  const start = bytes.length - 8 - length;
  return { bytes: bytes.subarray(start, bytes.length - 8), start };
}

/** Rewrites Parquet file `file`'s footer: `edit` changes its FileMetaData's decoded fields in place. */
export function rewriteFooter(file: string, edit: (fields: ThriftField[]) => void): void {
  const { bytes, start } = footerOf(file);
  const fields = decodeThriftStruct(bytes);
  edit(fields);
  const encoded = encodeThriftStruct(fields);
  const tail = Buffer.alloc(8);
  tail.writeUInt32LE(encoded.length, 0);
  tail.write('PAR1', 4, 'latin1');
  writeFileSync(file, Buffer.concat([readFileSync(file).subarray(0, start), encoded, tail]));
}
