import { LENGTH_DELIMITED } from './proto-reader.ts';

const TWO_32 = 4294967296;

const EMPTY = Buffer.alloc(0);
const encoded = new Map<string, Buffer>();

/**
 * UTF-8 bytes of a name that recurs in every answer (model name, version, tensor names, datatypes), cached:
 * under load, measuring and copying these few short strings on each call cost more than the rest of the encoder.
 */
export function cachedUtf8(text: string): Buffer {
  let bytes = encoded.get(text);
  if (bytes === undefined) {
    bytes = Buffer.from(text, 'utf8');
    if (text.length <= 256) {
      if (encoded.size >= 4096) encoded.clear();
      encoded.set(text, bytes);
    }
  }
  return bytes;
}

/** UTF-8 bytes of a string that may differ on every call (a request id). */
export function utf8(text: string): Buffer {
  return text === '' ? EMPTY : Buffer.from(text, 'utf8');
}

/** Bytes of a varint holding a non-negative value below 2^53. */
export function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  let size = 5;
  for (let rest = Math.floor(value / 0x8_0000_0000); rest > 0; rest = Math.floor(rest / 128)) size++;
  return size;
}

/** Bytes of an int64 field value: negative values take ten (two's complement, sign-extended). */
export function int64Size(value: number): number {
  return value < 0 ? 10 : varintSize(value);
}

/** Bytes of a length-delimited field of `field` (below 16) holding `length` bytes. */
export function delimitedSize(length: number): number {
  return 1 + varintSize(length) + length;
}

/** Writes protobuf wire format into a buffer sized beforehand (the caller computes the exact size). */
export class ProtoWriter {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** A key for a field number below 16. */
  key(field: number, wireType: number): void {
    this.buf[this.pos++] = (field << 3) | wireType;
  }

  varint(value: number): void {
    let rest = value;
    while (rest >= 0x80) {
      this.buf[this.pos++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.buf[this.pos++] = rest;
  }

  int64(value: number): void {
    if (value >= 0) {
      this.varint(value);
      return;
    }
    // Two's complement over 64 bits: the high word of a negative number, then the low word's bits.
    const hi = Math.floor(value / TWO_32);
    let lo = value - hi * TWO_32;
    let high = hi >>> 0;
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = (lo >>> 7) | ((high & 0x7f) << 25);
      high >>>= 7;
    }
    this.buf[this.pos++] = lo & 0x01;
  }

  bytes(field: number, value: Uint8Array): void {
    this.key(field, LENGTH_DELIMITED);
    this.varint(value.byteLength);
    this.buf.set(value, this.pos);
    this.pos += value.byteLength;
  }

  /** Starts an embedded message or packed run of `length` bytes. */
  delimited(field: number, length: number): void {
    this.key(field, LENGTH_DELIMITED);
    this.varint(length);
  }
}
