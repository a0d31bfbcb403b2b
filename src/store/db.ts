import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DaemonError } from '../errors.ts';
import { MIGRATIONS } from './migrations.ts';

export interface StoreOptions {
  /** How long a write waits for another connection's lock before failing (ms). Default 5000. */
  busyTimeoutMs?: number;
  /** Clock for updated_at columns (tests inject one). */
  now?: () => number;
}

export interface StoredCall {
  callKey: string;
  state: unknown;
  updatedAt: number;
}

/**
 * The daemon's SQLite state: calls in progress, small key/value items, and the outbox table (read and written by
 * src/outbox through `db`). WAL + synchronous=NORMAL: a commit survives a process crash; a power cut may lose
 * the last few commits but never corrupts the file, which is the trade-off a telephony bridge wants.
 * Every SQLite failure surfaces as DaemonError('E_STORE') naming the file.
 */
export class Store {
  readonly path: string;
  /** The connection, for the modules that keep their own tables in this file (the outbox). */
  readonly db: Database.Database;
  readonly now: () => number;
  private readonly stmts: ReturnType<typeof prepare>;

  constructor(file: string, options: StoreOptions = {}) {
    this.path = file;
    this.now = options.now ?? Date.now;
    try {
      if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
      this.db = new Database(file);
    } catch (err) {
      throw storeError(file, 'cannot open the state database', err);
    }
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      // SQLite's automatic checkpoint runs inside whichever commit crosses 1000 WAL pages and fsyncs there: a
      // ringing call would wait for it. The daemon checkpoints on a timer instead (startCheckpoints).
      this.db.pragma('wal_autocheckpoint = 0');
      this.db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
      migrate(this.db, file);
      this.stmts = prepare(this.db);
    } catch (err) {
      this.db.close();
      throw err instanceof DaemonError ? err : storeError(file, 'cannot open the state database', err);
    }
  }

  /**
   * Runs fn in one SQLite transaction and returns its result; a throw rolls everything back. Nested calls are
   * savepoints inside the outer transaction. fn must be synchronous (better-sqlite3 refuses a promise).
   */
  transaction<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn)();
    } catch (err) {
      throw err instanceof Database.SqliteError ? storeError(this.path, 'transaction failed', err) : err;
    }
  }

  /** Inserts or replaces a call's state. Inactive calls stay (for late events) until deleteCall. */
  saveCall(pbx: string, callKey: string, state: unknown, active = true): void {
    this.guard('saving a call', () => this.stmts.saveCall.run(pbx, callKey, JSON.stringify(state), active ? 1 : 0, this.now()));
  }

  deleteCall(pbx: string, callKey: string): void {
    this.guard('deleting a call', () => this.stmts.deleteCall.run(pbx, callKey));
  }

  /** The active calls of one PBX, oldest update first. */
  loadActiveCalls(pbx: string): StoredCall[] {
    const rows = this.guard('loading calls', () => this.stmts.activeCalls.all(pbx));
    return rows.map((r) => ({ callKey: r.call_key, state: JSON.parse(r.state_json), updatedAt: r.updated_at }));
  }

  getKv<T = unknown>(key: string): T | undefined {
    const row = this.guard('reading a value', () => this.stmts.getKv.get(key));
    return row ? (JSON.parse(row.value_json) as T) : undefined;
  }

  /** Stores a JSON-serializable value under key (replacing any previous one). */
  setKv(key: string, value: unknown): void {
    this.guard('writing a value', () => this.stmts.setKv.run(key, JSON.stringify(value), this.now()));
  }

  deleteKv(key: string): void {
    this.guard('deleting a value', () => this.stmts.deleteKv.run(key));
  }

  /**
   * Moves the WAL into the database file every `intervalMs` (PASSIVE: never waits for readers or writers), off the
   * path of any particular event. Returns a function that stops it. Without it the WAL grows until close.
   */
  startCheckpoints(intervalMs = 5000): () => void {
    const timer = setInterval(() => {
      try {
        if (this.db.open) this.db.pragma('wal_checkpoint(PASSIVE)');
      } catch {
        // busy or closing: the next tick tries again
      }
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Closes the connection (idempotent). WAL content is checkpointed into the main file by SQLite. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Runs one statement, turning a SQLite failure into E_STORE with the file's path. */
  guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw storeError(this.path, what, err);
    }
  }
}

/** Opens (creating if needed, and migrating) the state database; ':memory:' for a throwaway one. */
export function openStore(file: string, options?: StoreOptions): Store {
  return new Store(file, options);
}

function migrate(db: Database.Database, file: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  const latest = MIGRATIONS.at(-1)?.version ?? 0;
  if (current > latest) {
    throw new DaemonError('E_STORE', `${file}: the state database has schema version ${current}, newer than this daemon knows (${latest}); upgrade the daemon or use another storage.path`);
  }
  for (const step of MIGRATIONS) {
    if (step.version <= current) continue;
    db.transaction(() => {
      db.exec(step.sql);
      db.pragma(`user_version = ${step.version}`);
    })();
  }
}

function prepare(db: Database.Database) {
  return {
    saveCall: db.prepare<[string, string, string, number, number]>(
      `INSERT INTO calls (pbx, call_key, state_json, active, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (pbx, call_key) DO UPDATE SET state_json = excluded.state_json, active = excluded.active, updated_at = excluded.updated_at`,
    ),
    deleteCall: db.prepare<[string, string]>('DELETE FROM calls WHERE pbx = ? AND call_key = ?'),
    activeCalls: db.prepare<[string], { call_key: string; state_json: string; updated_at: number }>(
      'SELECT call_key, state_json, updated_at FROM calls WHERE pbx = ? AND active = 1 ORDER BY updated_at, call_key',
    ),
    getKv: db.prepare<[string], { value_json: string }>('SELECT value_json FROM kv WHERE key = ?'),
    setKv: db.prepare<[string, string, number]>(
      `INSERT INTO kv (key, value_json, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json, updated_at = excluded.updated_at`,
    ),
    deleteKv: db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
  };
}

function storeError(file: string, what: string, err: unknown): DaemonError {
  if (err instanceof DaemonError) return err;
  return new DaemonError('E_STORE', `${file}: ${what}: ${(err as Error).message}`, { cause: err });
}
