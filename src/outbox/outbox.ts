import { EventEmitter } from 'node:events';
import type { Logger } from '../log/logger.ts';
import { redact } from '../log/redact.ts';
import type { Store } from '../store/db.ts';
import { OutboxTable, type DeadLetter, type OutboxOp, type PriorOutcome, type StoredOp } from './outbox-table.ts';

export type { DeadLetter, OutboxOp, PriorOutcome, StoredOp } from './outbox-table.ts';

/**
 * Delivers one op. Resolve with a JSON-serializable result (kept, and shown to later ops of the group in `prior`).
 * Throw an error with `retryable: true` (optionally `retryAfterMs`) to be called again later; any other throw
 * dead-letters the op. Delivery is at-least-once: an op whose attempt was cut short by a crash is attempted again
 * after restart (`op.attempts > 1`), so the handler must make a repeat harmless (e.g. register with a stable
 * EXTERNAL_CALL_ID, or look the effect up first).
 */
export type OpHandler = (op: StoredOp, prior: ReadonlyMap<string, PriorOutcome>) => Promise<unknown>;

/** What a handler throws to be retried (duck-typed, so the Bitrix24 client's own error classes qualify). */
export interface RetryableError extends Error {
  retryable: true;
  retryAfterMs?: number;
}

/**
 * Folds the next queued op of the same group into the one about to be sent: returns the merged payload, or
 * undefined when they do not merge. Used to send the cards of a ring-all queue as one request with a USER_ID
 * array however the AMI events were split across socket reads.
 */
export type OpMerger = (head: StoredOp, next: StoredOp) => unknown;

export interface OutboxOptions {
  handler: OpHandler;
  merge?: OpMerger;
  /** Which ops may absorb followers at all (a cheap test that spares the others a query). Default: all. */
  mergeable?: (op: StoredOp) => boolean;
  /**
   * Ops that a delivered op triggers (queued after it in any group). Queued in the same transaction that marks
   * the op done, so a crash can never record the delivery and lose what follows it.
   */
  followUps?: (op: StoredOp, result: unknown) => OutboxOp[];
  /** Groups in flight at once. Default 4. */
  concurrency?: number;
  /** Exponential backoff between retries, with jitter. Defaults: 1 s … 5 min. */
  backoff?: { minMs?: number; maxMs?: number };
  /** Attempts before a retryable op is dead-lettered anyway. Default Infinity: Bitrix24 being down is not a reason to drop a call. */
  maxAttempts?: number;
  now?: () => number;
  log: Logger;
}

export interface OutboxEvents {
  delivered: [op: StoredOp, result: unknown];
  retry: [op: StoredOp, error: Error, delayMs: number];
  dead: [op: DeadLetter];
}

/** A due op is noticed within this long even if the wall clock jumped while a timer was armed. */
const MAX_TIMER_MS = 60_000;

/**
 * The durable outbox worker. Ops are rows in the state database, so a request queued together with the call
 * state (same store.transaction) is delivered even if the daemon dies right after. Ops of one group run one at
 * a time in enqueue order; a retryable failure blocks its group (never reorders it), other groups keep flowing.
 */
export class Outbox extends EventEmitter<OutboxEvents> {
  private readonly store: Store;
  private readonly table: OutboxTable;
  private readonly handler: OpHandler;
  private readonly merge: OpMerger | undefined;
  private readonly mergeable: (op: StoredOp) => boolean;
  private readonly followUps: ((op: StoredOp, result: unknown) => OutboxOp[]) | undefined;
  private readonly concurrency: number;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly maxAttempts: number;
  private readonly now: () => number;
  private readonly log: Logger;

  private started = false;
  private pausedUntilMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private drainQueued: NodeJS.Immediate | undefined;
  private readonly inFlight = new Map<string, Promise<void>>();
  private idleWaiters: Array<() => void> = [];

  constructor(store: Store, options: OutboxOptions) {
    super();
    this.store = store;
    this.table = new OutboxTable(store);
    this.handler = options.handler;
    this.merge = options.merge;
    this.mergeable = options.mergeable ?? (() => true);
    this.followUps = options.followUps;
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.minMs = Math.max(0, options.backoff?.minMs ?? 1000);
    this.maxMs = Math.max(this.minMs, options.backoff?.maxMs ?? 300_000);
    this.maxAttempts = options.maxAttempts ?? Infinity;
    this.now = options.now ?? Date.now;
    this.log = options.log.child({ component: 'outbox' });
  }

  /**
   * Queues ops (synchronously, in one transaction: call it inside store.transaction() to make it atomic with the
   * call state). An op whose idemKey is already known — pending, done or dead, from this run or an earlier one —
   * is ignored. Returns how many ops were new.
   */
  enqueue(ops: readonly OutboxOp[]): number {
    const now = this.now();
    const added = this.store.transaction(() => ops.filter((op) => this.table.insert(op, now)).length);
    // Drained on a later turn of the event loop, i.e. after the caller's transaction committed.
    if (added > 0) this.kick();
    return added;
  }

  /** Starts delivering, resuming whatever the database holds (ops in flight at a crash are tried again). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.log.info('outbox started', { pending: this.depth(), dead: this.table.deadLetters().length });
    this.kick();
  }

  /** Stops taking new ops and waits for the handlers in flight; their outcome is still recorded. */
  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.drainQueued) clearImmediate(this.drainQueued);
    this.drainQueued = undefined;
    await Promise.all(this.inFlight.values());
  }

  /** New work or a changed condition: look for due ops on the next turn of the event loop. */
  kick(): void {
    if (!this.started || this.drainQueued) return;
    this.drainQueued = setImmediate(() => {
      this.drainQueued = undefined;
      this.drain();
    });
  }

  /** Resolves once nothing is pending and nothing is in flight (dead letters do not count). */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.checkIdle();
    });
  }

  /** Pending ops (in flight included). */
  depth(): number {
    return this.table.depth();
  }

  oldestPendingAgeMs(): number | undefined {
    const oldest = this.table.oldestPendingCreatedAt();
    return oldest === undefined ? undefined : this.now() - oldest;
  }

  /**
   * Starts no op before epochMs (Bitrix24 said QUERY_LIMIT_EXCEEDED: the whole portal is over its limit).
   * Ops already in flight finish. A later call never shortens an earlier, longer pause.
   */
  pauseUntil(epochMs: number): void {
    if (epochMs <= this.pausedUntilMs) return;
    this.pausedUntilMs = epochMs;
    this.log.warn('outbox paused', { forMs: epochMs - this.now() });
    this.kick();
  }

  deadLetters(): DeadLetter[] {
    return this.table.deadLetters();
  }

  /** Puts one dead letter (or all) back in the queue with a fresh attempt count. Returns how many. */
  retryDead(id?: number): number {
    const count = this.table.retryDead(id, this.now());
    if (count > 0) this.kick();
    return count;
  }

  /** Deletes one dead letter (or all); its idemKey becomes unknown again. Returns how many. */
  dropDead(id?: number): number {
    return this.table.dropDead(id);
  }

  /**
   * Deletes delivered ops of groups that are finished (nothing pending or dead) and untouched for olderThanMs.
   * Until then their idemKeys keep re-enqueues from running twice, and their results feed `prior`, so keep this
   * well above the longest call plus any outage (a day is a sensible floor). Returns how many rows went.
   */
  prune(olderThanMs: number, keepGroups: readonly string[] = []): number {
    return this.table.prune(this.now() - olderThanMs, keepGroups);
  }

  private drain(): void {
    if (!this.started) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = this.now();
    if (now < this.pausedUntilMs) {
      this.arm(this.pausedUntilMs - now);
      return;
    }
    let wakeAt: number | undefined;
    try {
      // In-flight groups' heads are among the rows, so concurrency + 1 rows always hold every op we could start
      // now plus the next one to wake up for.
      for (const head of this.table.heads(this.concurrency + 1)) {
        if (this.inFlight.has(head.group)) continue;
        if (head.nextAttemptAt > now) {
          wakeAt = head.nextAttemptAt;
          break;
        }
        if (this.inFlight.size >= this.concurrency) break;
        const { nextAttemptAt: _, ...op } = head;
        this.launch(op);
      }
    } catch (err) {
      this.log.error(`outbox cannot read its queue: ${(err as Error).message}`);
    }
    if (wakeAt !== undefined) this.arm(wakeAt - now);
    this.checkIdle();
  }

  private arm(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.drain();
    }, Math.min(Math.max(0, delayMs), MAX_TIMER_MS));
  }

  private launch(op: StoredOp): void {
    const run = this.attempt(op).finally(() => {
      this.inFlight.delete(op.group);
      this.kick();
      this.checkIdle();
    });
    this.inFlight.set(op.group, run);
  }

  private async attempt(head: StoredOp): Promise<void> {
    let op: StoredOp;
    let prior: Map<string, PriorOutcome>;
    try {
      // Counted before the handler runs, so an attempt cut short by a crash still shows in `attempts`.
      this.table.markAttempt(head.id, this.now());
      op = this.absorbFollowing({ ...head, attempts: head.attempts + 1 });
      prior = this.table.prior(op.group, op.seq);
    } catch (err) {
      // The database failed us: wait rather than spin on the same op.
      this.log.error(`outbox cannot start op ${head.id}: ${(err as Error).message}`);
      this.pauseUntil(this.now() + this.maxMs);
      return;
    }

    let outcome: { ok: true; result: unknown } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, result: await this.handler(op, prior) };
    } catch (error) {
      outcome = { ok: false, error };
    }

    if (!outcome.ok && !this.started) {
      // Cut short by shutdown (the limiter gave up its waiters): not a verdict on the op, which stays pending.
      this.log.info(`${op.kind} interrupted by shutdown: sent again on the next start`, { group: op.group });
      return;
    }
    try {
      if (outcome.ok) this.delivered(op, outcome.result);
      else this.failed(op, outcome.error);
    } catch (err) {
      // The outcome was not recorded: the op stays pending and is tried again (at-least-once), but not in a
      // tight loop against Bitrix24 while the database is failing.
      this.log.error(`outbox cannot record the outcome of op ${op.id}: ${(err as Error).message}`);
      this.pauseUntil(this.now() + this.maxMs);
    }
  }

  /**
   * Merges the directly following pending ops of the group into `op` while the merger accepts them. Durable: the
   * merged payload is written to op's row and the absorbed rows are marked done (result `{ mergedInto }`) in
   * one transaction, so a crash cannot send an absorbed op twice.
   */
  private absorbFollowing(op: StoredOp): StoredOp {
    const merge = this.merge;
    if (!merge || !this.mergeable(op)) return op;
    return this.store.transaction(() => {
      let merged = op;
      const absorbed: StoredOp[] = [];
      for (const next of this.table.following(op.group, op.seq, 50)) {
        let payload: unknown;
        try {
          payload = merge(merged, next);
        } catch (err) {
          // A merger bug must not stop delivery: the ops go out one by one.
          this.log.error(`outbox merge failed for op ${next.id}: ${(err as Error).message}`);
          break;
        }
        if (payload === undefined) break;
        merged = { ...merged, payload };
        absorbed.push(next);
      }
      if (absorbed.length === 0) return op;
      const now = this.now();
      this.table.setPayload(op.id, merged.payload, now);
      for (const a of absorbed) this.table.markDone(a.id, { mergedInto: op.idemKey }, now);
      return merged;
    });
  }

  private delivered(op: StoredOp, result: unknown): void {
    const now = this.now();
    const queued = this.store.transaction(() => {
      this.table.markDone(op.id, result, now);
      let added = 0;
      for (const next of this.followUps?.(op, result) ?? []) if (this.table.insert(next, now)) added++;
      return added;
    });
    if (queued > 0) this.kick();
    this.log.debug('delivered', { op: op.kind, group: op.group, idemKey: op.idemKey, attempts: op.attempts });
    this.notify(() => this.emit('delivered', op, result));
  }

  private failed(op: StoredOp, thrown: unknown): void {
    const error = thrown instanceof Error ? thrown : new Error(String(thrown));
    const message = redact(error.message);
    const now = this.now();
    if (isRetryable(error) && op.attempts < this.maxAttempts) {
      const delayMs = error.retryAfterMs ?? this.backoff(op.attempts);
      this.table.markRetry(op.id, now + delayMs, message, now);
      this.log.warn(`${op.kind} failed, retrying in ${delayMs} ms: ${message}`, { group: op.group, attempts: op.attempts });
      this.notify(() => this.emit('retry', op, error, delayMs));
      return;
    }
    const reason = isRetryable(error) ? `${message} (gave up after ${op.attempts} attempts)` : message;
    this.table.markDead(op.id, reason, now);
    this.log.error(`${op.kind} dead-lettered: ${reason}`, { group: op.group, idemKey: op.idemKey });
    this.notify(() => this.emit('dead', { ...op, error: reason, failedAt: now }));
  }

  /** A listener's bug must not be mistaken for a delivery failure (the outcome is already recorded). */
  private notify(emit: () => void): void {
    try {
      emit();
    } catch (err) {
      this.log.error(`outbox event listener failed: ${(err as Error).message}`);
    }
  }

  /** Exponential from minMs, capped at maxMs, with "equal jitter" (half fixed, half random) so retries spread out. */
  private backoff(attempts: number): number {
    const exp = Math.min(this.maxMs, this.minMs * 2 ** Math.min(attempts - 1, 30));
    return Math.round(exp / 2 + (Math.random() * exp) / 2);
  }

  private checkIdle(): void {
    if (this.idleWaiters.length === 0 || this.inFlight.size > 0) return;
    let pending: number;
    try {
      pending = this.depth();
    } catch {
      return;
    }
    if (pending > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

export function isRetryable(error: unknown): error is RetryableError {
  return typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === true;
}
