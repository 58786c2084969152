/**
 * Text on its way into ONNX Runtime's string tensors. onnxruntime-node carries a string tensor as JavaScript
 * strings and hands ONNX Runtime NUL-terminated UTF-8, so an element reaches the model unchanged only when it
 * is valid UTF-8 without a NUL. Anything else is refused naming the element and the reason, never replaced or
 * cut: invalid bytes would arrive as U+FFFD and whatever follows a NUL would be lost.
 */
import { isUtf8 } from 'node:buffer';
import { invalidInput } from '../errors.ts';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const CUT_AT_NUL =
  'ONNX Runtime string tensors end at NUL (onnxruntime-node), so the element would reach the model cut short';

/** Where the first byte is that is not valid UTF-8 (the valid prefix re-encodes to itself). */
function firstInvalidByte(bytes: Uint8Array): number {
  const again = Buffer.from(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'), 'utf8');
  let i = 0;
  while (i < bytes.byteLength && i < again.byteLength && bytes[i] === again[i]) i++;
  return i;
}

/** The text of one element given as bytes (a BYTES element), byte for byte; `where` names the element. */
export function textOfBytes(where: string, bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw invalidInput(`${where} has a NUL byte at offset ${nul}; ${CUT_AT_NUL}`);
  if (!isUtf8(bytes)) {
    const at = firstInvalidByte(bytes);
    throw invalidInput(
      `${where} is not valid UTF-8 (byte 0x${(bytes[at] ?? 0).toString(16).padStart(2, '0')} at offset ${at}); ONNX Runtime string tensors in onnxruntime-node carry UTF-8 text only, so the element cannot reach the model unchanged`,
    );
  }
  // Buffer's decoder keeps a leading byte-order mark (TextDecoder drops it).
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/** Checks one element given as a string (JSON): it must have a UTF-8 form and no NUL. */
export function checkText(where: string, text: string): string {
  const nul = text.indexOf('\u0000');
  if (nul >= 0) throw invalidInput(`${where} has a NUL character (\\u0000) at character ${nul}; ${CUT_AT_NUL}`);
  const surrogate = LONE_SURROGATE.exec(text);
  if (surrogate) {
    throw invalidInput(
      `${where} has an unpaired surrogate (\\u${surrogate[0].charCodeAt(0).toString(16)}) at character ${surrogate.index}, which has no UTF-8 form`,
    );
  }
  return text;
}
