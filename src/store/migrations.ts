/**
 * The state database's schema, as numbered steps. `PRAGMA user_version` records the last step applied; opening
 * a database applies the missing ones in order, each in its own transaction, so a crash mid-upgrade leaves a
 * consistent version. Steps are append-only: never edit one that has shipped, add the next number instead.
 */
export interface Migration {
  readonly version: number;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      -- Calls in progress, so a restart resumes them (state_json is the call state machine's state).
      CREATE TABLE calls (
        pbx        TEXT    NOT NULL,
        call_key   TEXT    NOT NULL,
        state_json TEXT    NOT NULL,
        active     INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (pbx, call_key)
      );
      CREATE INDEX calls_active ON calls (pbx, active);

      -- Small durable values: OAuth tokens, the extension → user map cache.
      CREATE TABLE kv (
        key        TEXT    PRIMARY KEY,
        value_json TEXT    NOT NULL,
        updated_at INTEGER NOT NULL
      );

      -- Every Bitrix24 request, written in the same transaction as the call state that caused it.
      -- grp orders a call's requests (seq, 1-based within grp); status 'dead' rows are the dead letters.
      CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        idem_key        TEXT    NOT NULL UNIQUE,
        grp             TEXT    NOT NULL,
        seq             INTEGER NOT NULL,
        kind            TEXT    NOT NULL,
        payload_json    TEXT    NOT NULL,
        status          TEXT    NOT NULL CHECK (status IN ('pending', 'done', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        result_json     TEXT,
        error           TEXT,
        UNIQUE (grp, seq)
      );
      CREATE INDEX outbox_by_status ON outbox (status, grp, seq);
      -- For an admin with the sqlite3 shell.
      CREATE VIEW outbox_dead_letters AS
        SELECT id, grp, seq, kind, attempts, error, updated_at AS failed_at, payload_json FROM outbox WHERE status = 'dead';
    `,
  },
];
