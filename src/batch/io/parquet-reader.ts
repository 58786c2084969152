import { DuckDBTypeId, type DuckDBConnection, type DuckDBDataChunk, type DuckDBResult, type DuckDBType, type DuckDBValue } from '@duckdb/node-api';
import { CaliperError } from '../../errors.ts';
import { duckdbConnection, sqlString } from './duckdb-engine.ts';
import { RowBuffer } from './row-buffer.ts';
import { exactValues, type ColumnKind, type RowRange, type RowSource, type SourceBatch, type SourceColumn, type SourceRow } from './source-row.ts';

export function kindOf(type: DuckDBType): ColumnKind {
  switch (type.typeId) {
    case DuckDBTypeId.DOUBLE: case DuckDBTypeId.FLOAT: case DuckDBTypeId.DECIMAL: return 'double';
    case DuckDBTypeId.TINYINT: case DuckDBTypeId.SMALLINT: case DuckDBTypeId.INTEGER: case DuckDBTypeId.BIGINT:
    case DuckDBTypeId.UTINYINT: case DuckDBTypeId.USMALLINT: case DuckDBTypeId.UINTEGER: case DuckDBTypeId.UBIGINT: return 'integer';
    case DuckDBTypeId.BOOLEAN: return 'boolean';
    case DuckDBTypeId.VARCHAR: return 'string';
    default: return 'json';
  }
}

/** A DuckDB value as plain JS: numbers, strings, booleans, arrays, null; anything else as its text. */
export function plainValue(value: DuckDBValue): unknown {
  if (value === null || typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (typeof value === 'object' && 'items' in value && Array.isArray(value.items)) return value.items.map((v) => plainValue(v));
  if (typeof value === 'object' && 'toDouble' in value && typeof value.toDouble === 'function') return (value.toDouble as () => number)();
  return String(value);
}

/**
 * A DuckDB data chunk as row objects, each value as the row path expects it (see plainValue); where the plain
 * value is not the exact one (a DuckDB object or a bigint), the exact value is kept beside it (exactValues).
 */
export function sourceRowsOf(chunk: DuckDBDataChunk, names: readonly string[], types: readonly DuckDBType[]): SourceRow[] {
  const n = chunk.rowCount;
  const rows: SourceRow[] = new Array(n);
  for (let r = 0; r < n; r++) rows[r] = {};
  for (let c = 0; c < names.length; c++) {
    const name = names[c]!;
    const kind = kindOf(types[c]!);
    const vector = chunk.getColumnVector(c);
    const simple = kind === 'double' && types[c]!.typeId !== DuckDBTypeId.DECIMAL || kind === 'string' || kind === 'boolean';
    for (let r = 0; r < n; r++) {
      const value = vector.getItem(r);
      if (simple || value === null || (typeof value !== 'object' && typeof value !== 'bigint')) {
        rows[r]![name] = value;
        continue;
      }
      const row = rows[r]! as SourceRow & { [exactValues]?: Record<string, unknown> };
      row[name] = plainValue(value);
      (row[exactValues] ??= {})[name] = value;
    }
  }
  return rows;
}

export async function countParquetRows(file: string): Promise<number> {
  const connection = await duckdbConnection();
  try {
    const reader = await connection.runAndReadAll(`SELECT count(*)::DOUBLE AS n FROM read_parquet(${sqlString(file)})`);
    return reader.getRows()[0]![0] as number;
  } catch (error) {
    throw new CaliperError('CALIPER_INVALID_INPUT', `${file}: cannot read as Parquet: ${(error as Error).message.split('\n')[0]}`);
  } finally {
    connection.closeSync();
  }
}

/** Each column's exact SQL type in a Parquet file (read from its metadata), by name. */
export async function parquetColumnTypes(file: string): Promise<Map<string, string>> {
  const connection = await duckdbConnection();
  try {
    const result = await connection.run(`SELECT * FROM read_parquet(${sqlString(file)}) LIMIT 0`);
    const types = result.columnTypes();
    return new Map(result.columnNames().map((name, i) => [name, types[i]!.toString()]));
  } catch (error) {
    throw new CaliperError('CALIPER_INVALID_INPUT', `${file}: cannot read as Parquet: ${(error as Error).message.split('\n')[0]}`);
  } finally {
    connection.closeSync();
  }
}

/** True when DuckDB accepts `sqlType` in a declaration (a part's table is created with it). */
export async function declarableSqlType(sqlType: string): Promise<boolean> {
  const connection = await duckdbConnection();
  try {
    await connection.run(`SELECT CAST(NULL AS ${sqlType})`);
    return true;
  } catch {
    return false;
  } finally {
    connection.closeSync();
  }
}

/** Rows of a Parquet file through DuckDB, in file order, a data chunk (2048 rows) at a time. */
export class ParquetReader implements RowSource {
  private constructor(
    private readonly connection: DuckDBConnection,
    private readonly result: DuckDBResult,
    readonly columns: SourceColumn[],
    private readonly buffer: RowBuffer,
  ) {}

  static async open(file: string, range: RowRange): Promise<ParquetReader> {
    const connection = await duckdbConnection();
    const limit = Number.isFinite(range.end) ? ` LIMIT ${range.end - range.start}` : '';
    let result: DuckDBResult;
    try {
      result = await connection.stream(`SELECT * FROM read_parquet(${sqlString(file)})${limit} OFFSET ${range.start}`);
    } catch (error) {
      connection.closeSync();
      throw new CaliperError('CALIPER_INVALID_INPUT', `${file}: cannot read as Parquet: ${(error as Error).message.split('\n')[0]}`);
    }
    const names = result.columnNames();
    const types = result.columnTypes();
    const columns = names.map((name, i) => ({ name, kind: kindOf(types[i]!), sqlType: types[i]!.toString() }));
    const produce = async (): Promise<{ rows: SourceRow[] } | null> => {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) return null;
      return { rows: sourceRowsOf(chunk, names, types) };
    };
    return new ParquetReader(connection, result, columns, new RowBuffer(produce, range.start, range.end - range.start));
  }

  next(maxRows: number): Promise<SourceBatch | null> {
    return this.buffer.next(maxRows);
  }

  async close(): Promise<void> {
    this.connection.closeSync();
  }
}
