import { isMap, isScalar, parseDocument } from 'yaml';
import { CaliperError } from '../errors.ts';

/** One model.yaml setting a remedy changes: its path of keys and the new value (undefined removes the key). */
export interface YamlEdit {
  path: string[];
  value: unknown;
}

/** What the kept remedies change, stacked: model.yaml edits in order, and the ONNX file to serve instead. */
export interface ModelChange {
  edits: YamlEdit[];
  /** An optimized model file replacing the served one; undefined keeps the original. */
  modelFile?: string;
}

export const NO_CHANGE: ModelChange = { edits: [] };

/** `base` followed by `more`: later edits of the same path win, the later model file wins. */
export function stackChanges(base: ModelChange, more: ModelChange): ModelChange {
  const stacked: ModelChange = { edits: [...base.edits, ...more.edits] };
  const file = more.modelFile ?? base.modelFile;
  if (file !== undefined) stacked.modelFile = file;
  return stacked;
}

/**
 * Applies edits to model.yaml text through the YAML document model: comments, key order and everything the edits
 * do not name stay as written. A flow map on the way (`batching: { ... }`) stays a flow map.
 */
export function applyYamlEdits(text: string, edits: readonly YamlEdit[]): string {
  if (edits.length === 0) return text;
  const document = parseDocument(text);
  if (document.errors.length > 0)
    throw new CaliperError(
      'CALIPER_CONFIG_INVALID',
      `model.yaml: invalid YAML: ${document.errors[0]!.message.split('\n')[0]}`,
    );
  for (const edit of edits) {
    if (edit.value === undefined) {
      document.deleteIn(edit.path);
      continue;
    }
    for (let depth = 1; depth < edit.path.length; depth++) {
      const parent = edit.path.slice(0, depth);
      if (!isMap(document.getIn(parent))) document.setIn(parent, document.createNode({}));
    }
    document.setIn(edit.path, edit.value);
  }
  return keepUntouchedSections(text, document.toString({ lineWidth: 0 }), new Set(edits.map((e) => e.path[0]!)));
}

/** Each top-level entry of a YAML text: its key and the source offsets from the key to the end of its value. */
function topLevelEntries(text: string): Map<string, [number, number]> {
  const entries = new Map<string, [number, number]>();
  const contents = parseDocument(text).contents;
  if (!isMap(contents)) return entries;
  for (const pair of contents.items) {
    if (!isScalar(pair.key) || !pair.key.range) continue;
    const end = (pair.value as { range?: [number, number, number] } | null)?.range?.[1];
    if (end !== undefined) entries.set(String(pair.key.value), [pair.key.range[0], end]);
  }
  return entries;
}

/**
 * The serializer respells what it re-emits (`[a, b]` becomes `[ a, b ]`): the result keeps the original text of every
 * top-level section the edits did not touch, and takes the re-serialized text only for those they did (appending
 * sections the original lacked). A section that cannot be matched leaves the re-serialized text as it is.
 */
function keepUntouchedSections(original: string, updated: string, touched: ReadonlySet<string>): string {
  const before = topLevelEntries(original);
  const after = topLevelEntries(updated);
  if (before.size === 0 || after.size === 0) return updated;
  let result = original;
  const replaced = [...touched].filter((key) => before.has(key)).sort((a, b) => before.get(b)![0] - before.get(a)![0]);
  for (const key of replaced) {
    const [start, end] = before.get(key)!;
    const range = after.get(key);
    const was = original.slice(start, end);
    const section = range
      ? updated.slice(range[0], range[1]).replace(/\n$/, '') + (was.endsWith('\n') ? '\n' : '')
      : '';
    // Flow sequences inside the section keep the file's `[a, b]` spelling when it used it.
    const spelled =
      /\[[^ \n]/.test(was) && !/\[ /.test(was) ? section.replace(/\[ /g, '[').replace(/ \]/g, ']') : section;
    result = result.slice(0, start) + spelled + result.slice(end);
  }
  for (const key of touched) {
    const range = after.get(key);
    if (before.has(key) || !range) continue;
    result = `${result.replace(/\n*$/, '\n')}${updated.slice(range[0], range[1]).replace(/\n$/, '')}\n`;
  }
  return result;
}

/**
 * A unified diff of two texts (line based, longest common subsequence), as `diff -u` prints it with one
 * hunk covering the whole file when they differ; '' when they are equal.
 */
export function unifiedDiff(before: string, after: string, fromName: string, toName: string): string {
  if (before === after) return '';
  const a = before.replace(/\n$/, '').split('\n');
  const b = after.replace(/\n$/, '').split('\n');
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const lines: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      lines.push(` ${a[i]}`);
      i++;
      j++;
    } else if (i < a.length && (j >= b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      lines.push(`-${a[i]}`);
      i++;
    } else {
      lines.push(`+${b[j]}`);
      j++;
    }
  }
  return `--- ${fromName}\n+++ ${toName}\n@@ -1,${a.length} +1,${b.length} @@\n${lines.join('\n')}\n`;
}
