import { CaliperError } from '../../errors.ts';
/** Protobuf wire types (https://protobuf.dev/programming-guides/encoding/). */
export const VARINT = 0;
export const FIXED64 = 1;
export const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
export const FIXED32 = 5;

const TWO_32 = 4294967296;

/** Scalar types of repeated fields, for ProtoReader.repeated. */
export const ScalarKind = { Bool: 0, Int32: 1, Int64: 2, Uint32: 3, Uint64: 4, Float: 5, Double: 6 } as const;
export type ScalarKind = (typeof ScalarKind)[keyof typeof ScalarKind];

/** A malformed message (CALIPER_PROTO_MALFORMED): what was wrong and at which byte offset. */
export class ProtoDecodeError extends CaliperError {
  constructor(message: string) {
    super('CALIPER_PROTO_MALFORMED', message);
    this.name = 'ProtoDecodeError';
  }
}

/**
 * Reads protobuf wire format from a Buffer, strictly: truncated values, lengths past the end of the enclosing
 * message, invalid wire types and field number 0 are errors rather than garbage.
 */
export class ProtoReader {
  pos = 0;
  /** End of the message being read (nested messages narrow it while they are read). */
  end: number;
  /** The two halves of the last 64-bit varint read. */
  private lo = 0;
  private hi = 0;

  constructor(readonly buf: Buffer) {
    this.end = buf.byteLength;
  }

  fail(reason: string): never {
    throw new ProtoDecodeError(`${reason} (at byte ${this.pos})`);
  }

  /** Reads a field key; the field number is `key >>> 3`, the wire type `key & 7`. */
  key(): number {
    const key = this.uint32();
    if (key >>> 3 === 0) this.fail('field number 0');
    return key;
  }

  private varint(): void {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.buf[this.pos++]!;
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x7f) << 28;
        hi = (b & 0x7f) >>> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (b < 0x80) {
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return;
      }
    }
    this.fail('varint longer than 10 bytes');
  }

  /** A varint as an unsigned 32-bit value (field keys, lengths, uint32); higher bits are dropped, as protobuf specifies. */
  uint32(): number {
    if (this.pos < this.end && this.buf[this.pos]! < 0x80) return this.buf[this.pos++]!;
    this.varint();
    return this.lo;
  }

  int32(): number {
    this.varint();
    return this.lo | 0;
  }

  /** int64 as a JS number (exact below 2^53, as the loader's `longs: Number`). */
  int64(): number {
    this.varint();
    if (this.hi >>> 31) {
      const lo = (~this.lo + 1) >>> 0;
      const hi = lo === 0 ? (~this.hi + 1) >>> 0 : ~this.hi >>> 0;
      return -(lo + hi * TWO_32);
    }
    return this.lo + this.hi * TWO_32;
  }

  uint64(): number {
    this.varint();
    return this.lo + this.hi * TWO_32;
  }

  /** int64 exactly: a number when it is a safe integer, a bigint beyond 2^53. */
  int64Exact(): number | bigint {
    const value = this.int64();
    return Number.isSafeInteger(value) ? value : BigInt.asIntN(64, (BigInt(this.hi) << 32n) | BigInt(this.lo));
  }

  /** uint64 exactly: a number when it is a safe integer, a bigint beyond 2^53. */
  uint64Exact(): number | bigint {
    const value = this.uint64();
    return Number.isSafeInteger(value) ? value : (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  bool(): boolean {
    this.varint();
    return this.lo !== 0 || this.hi !== 0;
  }

  float(): number {
    this.need(4);
    const value = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return value;
  }

  double(): number {
    this.need(8);
    const value = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }

  private need(bytes: number): void {
    if (this.end - this.pos < bytes) this.fail(`truncated value: ${bytes} bytes needed, ${this.end - this.pos} left`);
  }

  /** Reads a length prefix and returns where the value ends, checked against the enclosing message. */
  limit(): number {
    const length = this.uint32();
    this.need(length);
    return this.pos + length;
  }

  /** A bytes field, as a view of the message buffer (no copy). */
  bytes(): Buffer {
    const end = this.limit();
    const value = this.buf.subarray(this.pos, end);
    this.pos = end;
    return value;
  }

  string(): string {
    const end = this.limit();
    const value = this.buf.toString('utf8', this.pos, end);
    this.pos = end;
    return value;
  }

  /**
   * Enters the embedded message that follows: narrows `end` to it and returns the enclosing end, to be handed
   * back to leave(). (A pair of calls rather than a callback: under tsx every closure created costs a
   * defineProperty for its name.)
   */
  enter(): number {
    const end = this.limit();
    const outer = this.end;
    this.end = end;
    return outer;
  }

  leave(outer: number): void {
    if (this.pos !== this.end) this.fail('embedded message overran its length');
    this.end = outer;
  }

  /** Reads one value of a repeated scalar field of `kind` into `into`. */
  private scalar(kind: ScalarKind, into: (number | bigint | boolean)[]): void {
    switch (kind) {
      case ScalarKind.Bool:
        into.push(this.bool());
        return;
      case ScalarKind.Int32:
        into.push(this.int32());
        return;
      case ScalarKind.Int64:
        into.push(this.int64Exact());
        return;
      case ScalarKind.Uint32:
        into.push(this.uint32());
        return;
      case ScalarKind.Uint64:
        into.push(this.uint64Exact());
        return;
      case ScalarKind.Float:
        into.push(this.float());
        return;
      case ScalarKind.Double:
        into.push(this.double());
        return;
    }
  }

  /** Reads the values of a repeated scalar field: packed (one length-delimited run) or one unpacked value. */
  repeated(key: number, kind: ScalarKind, into: (number | bigint | boolean)[]): void {
    if ((key & 7) === LENGTH_DELIMITED) {
      const outer = this.enter();
      while (this.pos < this.end) this.scalar(kind, into);
      this.leave(outer);
    } else {
      this.expect(key, kind === ScalarKind.Float ? FIXED32 : kind === ScalarKind.Double ? FIXED64 : VARINT);
      this.scalar(kind, into);
    }
  }

  /** Checks the wire type of a known field. */
  expect(key: number, wireType: number): void {
    if ((key & 7) !== wireType) this.fail(`field ${key >>> 3} has wire type ${key & 7}, expected ${wireType}`);
  }

  /** Skips a field of an unknown number. */
  skip(key: number): void {
    switch (key & 7) {
      case VARINT:
        this.varint();
        return;
      case FIXED64:
        this.need(8);
        this.pos += 8;
        return;
      case LENGTH_DELIMITED:
        this.pos = this.limit();
        return;
      case START_GROUP:
        for (;;) {
          if (this.pos >= this.end) this.fail('unterminated group');
          const inner = this.key();
          if ((inner & 7) === END_GROUP) {
            if (inner >>> 3 !== key >>> 3) this.fail('mismatched end of group');
            return;
          }
          this.skip(inner);
        }
      case FIXED32:
        this.need(4);
        this.pos += 4;
        return;
      default:
        this.fail(`invalid wire type ${key & 7}`);
    }
  }
}
