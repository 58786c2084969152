/** One SQL statement's parameters: text, numbers and NULL only (JSON is stored as text). */
export type SqlValue = string | number | null;

/** Runs statements written with `?` placeholders; each backend turns them into its own form. */
export interface SqlExecutor {
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  run(sql: string, params?: readonly SqlValue[]): Promise<void>;
}

export type RegistryDialect = 'sqlite' | 'postgres';

/**
 * Where the registry's metadata lives: SQLite in a folder (one machine, the default) or PostgreSQL
 * (several machines). Both hold the same tables, built by the same migrations.
 */
export interface RegistryDatabase extends SqlExecutor {
  readonly dialect: RegistryDialect;
  /** For messages: the folder or the URI without its password. */
  readonly location: string;
  /**
   * Runs `work` in one transaction that writers take one at a time per model: `lockModel` in it takes
   * the model's row lock (PostgreSQL) or is already covered by the database write lock (SQLite).
   * `changed` names models whose followers should look again once this commits.
   */
  write<T>(work: (tx: WriteTransaction) => Promise<T>): Promise<T>;
  /** Changes whenever a write committed anywhere: compared by followers that poll. */
  changeStamp(): Promise<string>;
  /** Calls `listener` soon after any write commits, where the backend can push (PostgreSQL LISTEN); returns a stop function. */
  watch?(listener: () => void, onError: (error: Error) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface WriteTransaction extends SqlExecutor {
  /** Holds the model's row until the transaction ends, so concurrent writers to one model go one at a time. */
  lockModel(name: string): Promise<void>;
  /** Tells followers to look again once this transaction commits. */
  changed(): void;
}

/** The channel PostgreSQL followers LISTEN on. */
export const REGISTRY_CHANNEL = 'caliper_registry';
