import { LENGTH_DELIMITED } from './proto-reader.ts';

const TWO_32 = 4294967296;

/**
 * UTF-8 byte length of a string. Names and datatypes are short ASCII; counting them here is cheaper than a
 * call into Buffer.byteLength.
 */
export function utf8Length(text: string): number {
  if (text.length > 64) return Buffer.byteLength(text, 'utf8');
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) return Buffer.byteLength(text, 'utf8');
  return text.length;
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

  /** A length-delimited string field; `length` is its UTF-8 byte length. */
  string(field: number, value: string, length: number): void {
    this.key(field, LENGTH_DELIMITED);
    this.varint(length);
    if (length === value.length && length <= 64) {
      // ASCII (one byte per UTF-16 unit, as utf8Length found): copied here rather than through Buffer.write.
      for (let i = 0; i < length; i++) this.buf[this.pos + i] = value.charCodeAt(i);
      this.pos += length;
    } else this.pos += this.buf.write(value, this.pos, length, 'utf8');
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
