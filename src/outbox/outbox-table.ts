import type { Store } from '../store/db.ts';

/** One request to deliver. `idemKey` is unique for ever (until pruned); `group` is usually a call. */
export interface OutboxOp {
  idemKey: string;
  group: string;
  kind: string;
  /** JSON-serializable. */
  payload: unknown;
}

export interface StoredOp extends OutboxOp {
  id: number;
  /** 1-based position within the group: the order ops were enqueued, and the order they are delivered. */
  seq: number;
  /** Attempts started so far, this one included (an attempt cut short by a crash counts). */
  attempts: number;
  createdAt: number;
}

export interface DeadLetter extends StoredOp {
  error: string;
  failedAt: number;
}

/** What became of an earlier op of the same group. `result` is the handler's return value (undefined when dead). */
export interface PriorOutcome {
  status: 'done' | 'dead';
  result: unknown;
  error?: string;
}

/** A group's next op, with when it may be tried. */
export interface HeadOp extends StoredOp {
  nextAttemptAt: number;
}

interface Row {
  id: number;
  idem_key: string;
  grp: string;
  seq: number;
  kind: string;
  payload_json: string;
  attempts: number;
  next_attempt_at: number;
  created_at: number;
  updated_at: number;
  error: string | null;
}

/** The outbox's SQL (table created by src/store/migrations.ts). Every method is one statement. */
export class OutboxTable {
  private readonly store: Store;
  private readonly s;

  constructor(store: Store) {
    this.store = store;
    const db = store.db;
    this.s = {
      insert: db.prepare<[string, string, string, string, string, number, number, number]>(
        `INSERT INTO outbox (idem_key, grp, seq, kind, payload_json, status, attempts, next_attempt_at, created_at, updated_at)
         SELECT ?, ?, COALESCE((SELECT MAX(seq) FROM outbox WHERE grp = ?), 0) + 1, ?, ?, 'pending', 0, ?, ?, ?
         WHERE true -- lets SQLite parse the upsert clause after a SELECT
         ON CONFLICT (idem_key) DO NOTHING`,
      ),
      heads: db.prepare<[number], Row>(
        `SELECT o.* FROM outbox o
         JOIN (SELECT grp, MIN(seq) AS seq FROM outbox WHERE status = 'pending' GROUP BY grp) h ON h.grp = o.grp AND h.seq = o.seq
         ORDER BY o.next_attempt_at, o.id LIMIT ?`,
      ),
      markAttempt: db.prepare<[number, number]>('UPDATE outbox SET attempts = attempts + 1, updated_at = ? WHERE id = ?'),
      markDone: db.prepare<[string | null, number, number]>(
        `UPDATE outbox SET status = 'done', result_json = ?, error = NULL, updated_at = ? WHERE id = ?`,
      ),
      markRetry: db.prepare<[number, string, number, number]>('UPDATE outbox SET next_attempt_at = ?, error = ?, updated_at = ? WHERE id = ?'),
      markDead: db.prepare<[string, number, number]>(`UPDATE outbox SET status = 'dead', error = ?, updated_at = ? WHERE id = ?`),
      prior: db.prepare<[string, number], { idem_key: string; status: 'done' | 'dead'; result_json: string | null; error: string | null }>(
        `SELECT idem_key, status, result_json, error FROM outbox WHERE grp = ? AND seq < ? AND status IN ('done', 'dead') ORDER BY seq`,
      ),
      following: db.prepare<[string, number, number], Row>(
        `SELECT * FROM outbox WHERE grp = ? AND seq > ? AND status = 'pending' ORDER BY seq LIMIT ?`,
      ),
      setPayload: db.prepare<[string, number, number]>('UPDATE outbox SET payload_json = ?, updated_at = ? WHERE id = ?'),
      depth: db.prepare<[], number>(`SELECT COUNT(*) FROM outbox WHERE status = 'pending'`).pluck(),
      oldest: db.prepare<[], number | null>(`SELECT MIN(created_at) FROM outbox WHERE status = 'pending'`).pluck(),
      dead: db.prepare<[], Row>(`SELECT * FROM outbox WHERE status = 'dead' ORDER BY id`),
      retryDead: db.prepare<[number, number, number | null, number | null]>(
        `UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, error = NULL, updated_at = ?
         WHERE status = 'dead' AND (? IS NULL OR id = ?)`,
      ),
      dropDead: db.prepare<[number | null, number | null]>(`DELETE FROM outbox WHERE status = 'dead' AND (? IS NULL OR id = ?)`),
      // Whole groups only, and only when nothing in them can still run: a later op (or a retried dead one) may
      // need an earlier op's result from `prior`.
      prune: db.prepare<[number, string]>(
        `DELETE FROM outbox WHERE grp IN (
           SELECT grp FROM outbox GROUP BY grp HAVING SUM(status <> 'done') = 0 AND MAX(updated_at) < ?)
         AND grp NOT IN (SELECT value FROM json_each(?))`,
      ),
    };
  }

  /** Returns false when the idemKey is already known (pending, done or dead). */
  insert(op: OutboxOp, now: number): boolean {
    const payload = JSON.stringify(op.payload) ?? 'null';
    return this.store.guard('queueing a request', () =>
      this.s.insert.run(op.idemKey, op.group, op.group, op.kind, payload, now, now, now).changes === 1);
  }

  /** The first pending op of each group, soonest due first. */
  heads(limit: number): HeadOp[] {
    return this.store.guard('reading the outbox', () => this.s.heads.all(limit)).map((r) => ({ ...toOp(r), nextAttemptAt: r.next_attempt_at }));
  }

  markAttempt(id: number, now: number): void {
    this.store.guard('updating the outbox', () => this.s.markAttempt.run(now, id));
  }

  markDone(id: number, result: unknown, now: number): void {
    const json = result === undefined ? null : JSON.stringify(result);
    this.store.guard('updating the outbox', () => this.s.markDone.run(json, now, id));
  }

  markRetry(id: number, nextAttemptAt: number, error: string, now: number): void {
    this.store.guard('updating the outbox', () => this.s.markRetry.run(nextAttemptAt, error, now, id));
  }

  markDead(id: number, error: string, now: number): void {
    this.store.guard('updating the outbox', () => this.s.markDead.run(error, now, id));
  }

  /** The pending ops queued after `seq` in the group, in order (candidates for merging into it). */
  following(group: string, seq: number, limit: number): StoredOp[] {
    return this.store.guard('reading the outbox', () => this.s.following.all(group, seq, limit)).map(toOp);
  }

  setPayload(id: number, payload: unknown, now: number): void {
    this.store.guard('updating the outbox', () => this.s.setPayload.run(JSON.stringify(payload) ?? 'null', now, id));
  }

  prior(group: string, seq: number): Map<string, PriorOutcome> {
    const rows = this.store.guard('reading the outbox', () => this.s.prior.all(group, seq));
    return new Map(rows.map((r) => [r.idem_key, {
      status: r.status,
      result: r.result_json === null ? undefined : JSON.parse(r.result_json),
      ...(r.error !== null ? { error: r.error } : {}),
    }]));
  }

  depth(): number {
    return this.store.guard('reading the outbox', () => this.s.depth.get()) ?? 0;
  }

  oldestPendingCreatedAt(): number | undefined {
    return this.store.guard('reading the outbox', () => this.s.oldest.get()) ?? undefined;
  }

  deadLetters(): DeadLetter[] {
    return this.store.guard('reading the outbox', () => this.s.dead.all())
      .map((r) => ({ ...toOp(r), error: r.error ?? '', failedAt: r.updated_at }));
  }

  retryDead(id: number | undefined, now: number): number {
    return this.store.guard('updating the outbox', () => this.s.retryDead.run(now, now, id ?? null, id ?? null).changes);
  }

  dropDead(id: number | undefined): number {
    return this.store.guard('updating the outbox', () => this.s.dropDead.run(id ?? null, id ?? null).changes);
  }

  prune(cutoff: number, keep: readonly string[] = []): number {
    return this.store.guard('pruning the outbox', () => this.s.prune.run(cutoff, JSON.stringify(keep)).changes);
  }
}

function toOp(r: Row): StoredOp {
  return {
    id: r.id,
    idemKey: r.idem_key,
    group: r.grp,
    seq: r.seq,
    kind: r.kind,
    payload: JSON.parse(r.payload_json),
    attempts: r.attempts,
    createdAt: r.created_at,
  };
}
