import { parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';

/**
 * JSON with exact 64-bit integers, for the tensors of the Open Inference Protocol. JSON.parse rounds an integer
 * literal beyond 2^53 to the nearest double and JSON.stringify cannot write a bigint; these keep every digit.
 * The plain functions run whenever nothing needs more (the usual case), lossless-json otherwise.
 */

/** Sixteen digits in a row: the shortest literal that can be an integer beyond Number.MAX_SAFE_INTEGER. */
const LONG_DIGITS = /\d{16}/;
const INTEGER_LITERAL = /^-?\d+$/;

/** An integer literal beyond 2^53 becomes a bigint; every other number is a double, as JSON.parse reads it. */
export function exactNumber(text: string): number | bigint {
  const value = Number(text);
  return Number.isSafeInteger(value) || !INTEGER_LITERAL.test(text) ? value : BigInt(text);
}

/** True when the text has a digit run long enough to be an integer beyond 2^53 (a cheap test, conservative). */
export function mayHoldUnsafeInteger(text: string): boolean {
  return LONG_DIGITS.test(text);
}

/** Parses JSON text; integers beyond 2^53 come back as bigint, all else as JSON.parse gives it. */
export function parseExactJson(text: string): unknown {
  if (!LONG_DIGITS.test(text)) return JSON.parse(text);
  return parseLossless(text, null, exactNumber);
}

/** JSON text of a value that may hold bigints (written with all their digits); NaN and ±Infinity are null. */
export function stringifyExactJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (error) {
    // JSON.stringify refuses a bigint with a TypeError: only then is the slower writer needed.
    if (!(error instanceof TypeError) || !/BigInt/i.test(error.message)) throw error;
    return stringifyLossless(value) ?? 'null';
  }
}
