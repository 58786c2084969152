import { closeSync, copyFileSync, fstatSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { copyBytes } from './file-bytes.ts';
import {
  BINARY,
  type Edit,
  type FieldRange,
  type Footer,
  I16,
  I64,
  LIST,
  META,
  footerBounds,
  ParquetJoinError,
  readFooter,
  type ShiftedRowGroups,
  type WalkedRowGroup,
  STRUCT,
  shiftRowGroups,
  spliced,
  structListHeader,
  Walker,
  zigzag,
} from './parquet-footer.ts';
import type { ParquetCompression } from './batch-format.ts';

/**
 * Prediction columns added to a Parquet file without rewriting its own columns: the output is the input's bytes up to
 * its footer (every column chunk, page, dictionary, bloom filter and index where the input's writer put it), then the
 * data of one or more Parquet files holding only the prediction columns, row group for row group, then one footer
 * whose schema lists the input's columns then the predictions', and whose row group g lists the input's column chunks
 * of group g then the predictions' of group g. The input's offsets stay valid (its bytes do not move); the
 * predictions' are shifted by where their bytes land (parquet-footer.ts shiftRowGroups).
 *
 * Why: DuckDB copying a file through read_parquet and COPY decodes and re-encodes every column (1M fraud rows: ≈ 210
 * ms of CPU for the 4 input columns, which is the whole "I/O floor" of bench/batch.ts); the scoring job then paid that
 * as well as the model. Written this way only the prediction columns are encoded; the input's bytes are copied by
 * the kernel (copyFileSync). It is the output DuckDB's COPY writes with the same rows and values (the same columns,
 * types and row groups), except that the input's columns keep the input's own encodings and statistics, and the
 * input's key/value metadata (a writer's schema notes, such as pandas' or Arrow's, which would no longer describe the
 * file's columns) is not carried over.
 *
 * Used only where that output is the one asked for (parquetStitchLayout): every input column kept as it is, in order,
 * no prediction named like one of them (case aside), every input column chunk compressed with the output's codec, no
 * encryption.
 */

/** parquet.thrift's CompressionCodec for each `--compression` (DuckDB writes LZ4_RAW for lz4). */
const CODECS: Record<ParquetCompression, number> = {
  uncompressed: 0,
  snappy: 1,
  gzip: 2,
  brotli: 4,
  lz4: 7,
  zstd: 6,
};

/** FileMetaData fields the stitched footer is built from (any other field refuses the stitch). */
const KNOWN_META = new Set([1, 2, 3, 4, 5, 6, 7]);
const VERSION = 1;
const CREATED_BY = 6;
const COLUMN_ORDERS = 7;
/** SchemaElement fields read here. */
const SCHEMA_NAME = 4;
const SCHEMA_CHILDREN = 5;

/** One SchemaElement of a footer's schema list: where its bytes lie, its name and its number of children. */
interface SchemaElement {
  start: number;
  end: number;
  name: string;
  children: number;
  /** Where num_children's value lies (the root's is rewritten). */
  childrenRange?: { start: number; end: number };
}

/** A footer walked for stitching. */
interface Walked {
  footer: Footer;
  schema: SchemaElement[];
  /** The top-level column names, in order. */
  topLevel: string[];
  rowGroups: ShiftedRowGroups;
  /** The column_orders list's items, where the writer wrote one. */
  columnOrders?: { start: number; end: number; size: number };
  /** The key_value_metadata list's entries: each one's key and bytes. */
  keyValues: { key: string; start: number; end: number }[];
}

/**
 * Key/value metadata of the input's that describes the input's own columns as a whole (Arrow's schema, pandas'
 * columns and index): not carried into a file with more columns, as DuckDB's rewrite does not carry them either. Other
 * entries (GeoParquet's 'geo', which says which columns are geometries; a user's own) are kept.
 */
const WHOLE_SCHEMA_KEYS = new Set(['ARROW:schema', 'pandas']);

function walkSchema(footer: Footer, path: string): { schema: SchemaElement[]; topLevel: string[] } {
  const range = footer.fields.get(META.schema);
  if (!range) throw new ParquetJoinError(`${path}: no schema`);
  const walker = new Walker(footer.bytes, range.start);
  const { elementType, size } = walker.list(range.type, `${path} schema`);
  if (size === 0 || elementType !== STRUCT) throw new ParquetJoinError(`${path} schema: expected a list of structs`);
  const schema: SchemaElement[] = [];
  for (let i = 0; i < size; i++) {
    const element: SchemaElement = { start: walker.at, end: 0, name: '', children: 0 };
    walker.fields((id, type) => {
      if (id === SCHEMA_NAME && type === BINARY) element.name = walker.string();
      else if (id === SCHEMA_CHILDREN) {
        const start = walker.at;
        element.children = walker.integer(type, `${path} schema element ${i} num_children`);
        element.childrenRange = { start, end: walker.at };
      } else walker.skip(type);
    });
    element.end = walker.at;
    schema.push(element);
  }
  // The root's children are the top-level columns; each spans its own subtree of elements.
  const topLevel: string[] = [];
  let at = 1;
  const span = (index: number): number => {
    let next = index + 1;
    for (let c = 0; c < (schema[index]?.children ?? 0); c++) next = span(next);
    if (next > schema.length) throw new ParquetJoinError(`${path} schema: num_children past the list's end`);
    return next;
  };
  for (let c = 0; c < schema[0]!.children; c++) {
    topLevel.push(schema[at]!.name);
    at = span(at);
  }
  if (at !== schema.length) throw new ParquetJoinError(`${path} schema: elements outside the root's tree`);
  return { schema, topLevel };
}

/** Reads and walks the footer of `path` (open as `fd`); `delta` moves its row groups' offsets (shiftRowGroups). */
function walk(fd: number, path: string, delta: number): Walked {
  let rowGroups: ShiftedRowGroups | undefined;
  const footer = readFooter(fd, path, (walker, type) => {
    rowGroups = shiftRowGroups(walker, type, delta, 0);
  });
  for (const id of footer.fields.keys())
    if (!KNOWN_META.has(id)) throw new ParquetJoinError(`${path}: FileMetaData field ${id} (encryption or unknown)`);
  if (!rowGroups) throw new ParquetJoinError(`${path}: no row_groups`);
  let columnOrders: Walked['columnOrders'];
  const orders = footer.fields.get(COLUMN_ORDERS);
  if (orders) {
    const walker = new Walker(footer.bytes, orders.start);
    const { size } = walker.list(orders.type, `${path} column_orders`);
    columnOrders = { start: walker.at, end: orders.end, size };
  }
  const keyValues: Walked['keyValues'] = [];
  const kv = footer.fields.get(META.keyValue);
  if (kv) {
    const walker = new Walker(footer.bytes, kv.start);
    const { size } = walker.list(kv.type, `${path} key_value_metadata`);
    for (let i = 0; i < size; i++) {
      const entry = { key: '', start: walker.at, end: 0 };
      walker.fields((id, type) => {
        if (id === 1 && type === BINARY) entry.key = walker.string();
        else walker.skip(type);
      });
      entry.end = walker.at;
      keyValues.push(entry);
    }
  }
  return { footer, ...walkSchema(footer, path), rowGroups, columnOrders, keyValues };
}

/** Writes a Thrift compact struct's fields in increasing id order (short field headers). */
class StructWriter {
  readonly parts: Uint8Array[] = [];
  private last = 0;

  field(id: number, type: number, ...value: Uint8Array[]): this {
    const delta = id - this.last;
    if (delta < 1 || delta > 15) throw new Error(`field ${id} after ${this.last}`);
    this.parts.push(Uint8Array.of((delta << 4) | type), ...value);
    this.last = id;
    return this;
  }

  /** A field copied from a walked footer: its wire type and value bytes as the writer wrote them. */
  copied(id: number, bytes: Uint8Array, range: FieldRange | undefined): this {
    return range ? this.field(id, range.type, bytes.subarray(range.start, range.end)) : this;
  }

  end(): Uint8Array[] {
    this.parts.push(Uint8Array.of(0));
    return this.parts;
  }
}

/** How the input would be stitched: the row group size the prediction files must be written with. */
export interface ParquetStitchLayout {
  rowGroupRows: number;
}

/**
 * Whether scoring Parquet file `input` may write its output by stitching (see the module's comment): `keptSql` (the
 * plan's kept columns) is every input column as it is, in order (`i."name"` each, in `quote`'s identifier form),
 * `predictions` names none of them, and every column chunk is compressed with `compression`. Returns the layout, or
 * the reason it may not (the job then rewrites every column, as DuckDB's COPY does).
 */
export function parquetStitchLayout(
  input: string,
  keptSql: readonly string[],
  predictions: readonly string[],
  compression: ParquetCompression,
  quote: (name: string) => string,
): ParquetStitchLayout | { refused: string } {
  let walked: Walked;
  const fd = openSync(input, 'r');
  try {
    walked = walk(fd, input, 0);
  } catch (error) {
    if (error instanceof ParquetJoinError) return { refused: error.message };
    throw error;
  } finally {
    closeSync(fd);
  }
  const { topLevel, rowGroups } = walked;
  if (rowGroups.size === 0) return { refused: 'no row groups' };
  if (keptSql.length !== topLevel.length || keptSql.some((sql, i) => sql !== `i.${quote(topLevel[i]!)}`))
    return { refused: 'the output does not keep every input column as it is' };
  // DuckDB's names are case-insensitive: its rewrite renames a prediction named like an input column but for case
  // (FRAUD_PROBABILITY kept, fraud_probability written as fraud_probability_1), and a file holding both names is
  // refused by case-insensitive readers (Spark's default): such a job is rewritten, as it was before stitching.
  const inputNames = new Set(topLevel.map((name) => name.toLowerCase()));
  if (predictions.some((name) => inputNames.has(name.toLowerCase())))
    return { refused: 'a prediction is named like an input column' };
  if ([...rowGroups.codecs].some((codec) => codec !== CODECS[compression]))
    return { refused: `an input column is not compressed with ${compression}` };
  // DuckDB's writer ends a row group once it holds ROW_GROUP_SIZE rows, and its reader's chunks end where a row group
  // ends: the prediction files' groups match the input's where every group but the last is of that size.
  // A group of no rows (some writers end a file so) has no counterpart: the prediction COPY writes none.
  if (rowGroups.groups.some((g) => g.numRows === 0)) return { refused: 'an empty row group' };
  const rowGroupRows = Math.max(...rowGroups.groups.map((g) => g.numRows));
  if (rowGroups.groups.slice(0, -1).some((g) => g.numRows !== rowGroupRows))
    return { refused: 'the input row groups are of unequal sizes' };
  return { rowGroupRows };
}

/**
 * Writes `target`: Parquet file `input` with the columns of `predictions` (Parquet files of the prediction columns
 * only, whose row groups, in order, hold as many rows as the input's) added after its own; `inputCopied`: `target`
 * already holds a copy of `input` (taken while the predictions were scored). Throws ParquetJoinError,
 * before `target` is written, where the files cannot be stitched (the row groups do not align, a footer this code
 * cannot read); `target` may then hold a partial file for the caller to remove where a write fails.
 */
export function stitchParquet(
  input: string,
  predictions: readonly string[],
  target: string,
  inputCopied = false,
): { rows: number; rowGroups: number } {
  const fdIn = openSync(input, 'r');
  const fds = predictions.map((path) => openSync(path, 'r'));
  try {
    const base = walk(fdIn, input, 0);
    // Each prediction file's data (its bytes between the leading 'PAR1' and its footer) lands after the ones before it:
    // its footer is walked once, its offsets moved to where the data will lie.
    let at = base.footer.start;
    const placed = predictions.map((path, p) => {
      const delta = at - 4;
      at += footerBounds(fds[p]!, path).start - 4;
      return { path, fd: fds[p]!, walked: walk(fds[p]!, path, delta) };
    });
    const groups = placed.flatMap((p) => p.walked.rowGroups.groups.map((group) => ({ group, from: p.walked })));
    const inputGroups = base.rowGroups.groups;
    if (groups.length !== inputGroups.length || groups.some((g, i) => g.group.numRows !== inputGroups[i]!.numRows))
      throw new ParquetJoinError(
        `the prediction files' row groups (${groups.map((g) => g.group.numRows).join(', ')}) do not align with the input's (${inputGroups.map((g) => g.numRows).join(', ')})`,
      );
    const schemas = placed.map((p) => p.walked.topLevel.join(','));
    if (schemas.some((s) => s !== schemas[0])) throw new ParquetJoinError('the prediction files differ in schema');
    const footer = stitchedFooter(base, placed[0]!.walked, groups);

    if (!inputCopied) copyFileSync(input, target);
    const out = openSync(target, 'r+');
    try {
      ftruncateSync(out, base.footer.start);
      let end = base.footer.start;
      for (const p of placed) {
        const length = p.walked.footer.start - 4;
        copyBytes(
          p.fd,
          4,
          4 + length,
          out,
          end,
          (position) => new ParquetJoinError(`${p.path}: ended at byte ${position}`),
        );
        end += length;
      }
      writeSync(out, footer, 0, footer.length, end);
      if (fstatSync(out).size !== end + footer.length) throw new Error(`${target}: not written whole`);
    } finally {
      closeSync(out);
    }
    return { rows: inputGroups.reduce((sum, g) => sum + g.numRows, 0), rowGroups: inputGroups.length };
  } finally {
    closeSync(fdIn);
    for (const fd of fds) closeSync(fd);
  }
}

/** The stitched file's footer (FileMetaData, its length, 'PAR1'); `added`: the first prediction file's (all alike). */
function stitchedFooter(
  base: Walked,
  added: Walked,
  groups: readonly { group: WalkedRowGroup; from: Walked }[],
): Buffer {
  const bytes = base.footer.bytes;
  const root = base.schema[0]!;
  if (!root.childrenRange) throw new ParquetJoinError('the input schema root has no num_children');
  const rootEdit: Edit = {
    start: root.childrenRange.start,
    end: root.childrenRange.end,
    bytes: zigzag(root.children + added.topLevel.length),
  };
  const schema = [
    structListHeader(base.schema.length + added.schema.length - 1),
    ...spliced(bytes, root.start, root.end, [rootEdit]),
    bytes.subarray(base.schema[1]?.start ?? root.end, base.schema.at(-1)!.end),
    added.footer.bytes.subarray(added.schema[1]?.start ?? added.schema[0]!.end, added.schema.at(-1)!.end),
  ];
  const rowGroups: Uint8Array[] = [structListHeader(groups.length)];
  groups.forEach(({ group, from }, g) => {
    const own = base.rowGroups.groups[g]!;
    const theirs = from.rowGroups;
    const edits = theirs.edits.filter((e) => e.start >= group.columnsStart && e.end <= group.columnsEnd);
    const writer = new StructWriter()
      .field(
        1,
        LIST,
        structListHeader(own.columnCount + group.columnCount),
        bytes.subarray(own.columnsStart, own.columnsEnd),
        ...spliced(from.footer.bytes, group.columnsStart, group.columnsEnd, edits),
      )
      .field(2, I64, zigzag(own.totalByteSize + group.totalByteSize))
      .field(3, I64, zigzag(own.numRows))
      .copied(4, bytes, own.sortingColumns);
    if (own.fileOffset !== undefined) writer.field(5, I64, zigzag(own.fileOffset));
    if (own.totalCompressedSize !== undefined && group.totalCompressedSize !== undefined)
      writer.field(6, I64, zigzag(own.totalCompressedSize + group.totalCompressedSize));
    if (own.ordinal) writer.field(7, I16, zigzag(g));
    rowGroups.push(...writer.end());
  });
  const meta = new StructWriter()
    .copied(VERSION, bytes, base.footer.fields.get(VERSION))
    .field(META.schema, LIST, ...schema)
    .copied(META.numRows, bytes, base.footer.fields.get(META.numRows))
    .field(META.rowGroups, LIST, ...rowGroups)
    // No key/value metadata: a list of none (a writer that has none writes no field; readers take both alike).
    .field(META.keyValue, LIST, ...keyValues(base, added));
  // The input's writer: readers judge the statistics of a file's chunks by it (Arrow and parquet-mr ignore those of
  // writer versions known to get them wrong), and most chunks are the input's. DuckDB's where the input names none.
  const createdBy = base.footer.fields.get(CREATED_BY);
  if (createdBy) meta.copied(CREATED_BY, bytes, createdBy);
  else meta.copied(CREATED_BY, added.footer.bytes, added.footer.fields.get(CREATED_BY));
  if (base.columnOrders && added.columnOrders) {
    const orders = base.columnOrders;
    // ColumnOrder is a union, written as a struct: one per leaf column, the input's then the predictions'.
    meta.field(
      COLUMN_ORDERS,
      LIST,
      structListHeader(orders.size + added.columnOrders.size),
      bytes.subarray(orders.start, orders.end),
      added.footer.bytes.subarray(added.columnOrders.start, added.columnOrders.end),
    );
  }
  const body = Buffer.concat(meta.end());
  const tail = Buffer.alloc(8);
  tail.writeUInt32LE(body.length, 0);
  tail.write('PAR1', 4, 'latin1');
  return Buffer.concat([body, tail]);
}

/** The stitched key/value metadata: the input's entries (less WHOLE_SCHEMA_KEYS), then the prediction file's new ones. */
function keyValues(base: Walked, added: Walked): Uint8Array[] {
  const own = base.keyValues.filter((kv) => !WHOLE_SCHEMA_KEYS.has(kv.key));
  const theirs = added.keyValues.filter((kv) => !own.some((o) => o.key === kv.key));
  return [
    structListHeader(own.length + theirs.length),
    ...own.map((kv) => base.footer.bytes.subarray(kv.start, kv.end)),
    ...theirs.map((kv) => added.footer.bytes.subarray(kv.start, kv.end)),
  ];
}
