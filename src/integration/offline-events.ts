/**
 * Offline events (events.mode: offline) for PBXes Bitrix24 cannot reach: the handlers are bound with
 * `event.bind … event_type=offline` (CLI `event-bind --offline`) and Bitrix24 queues the events; the daemon
 * polls them and feeds them to the same handler as the online route. No token check: the request was made with
 * our own credentials. Per the docs the methods work in an application context (local application / OAuth).
 *
 * Nothing is lost to a crash: events are read with `clear: 0` under our process_id (kept in the state
 * database, so after a restart the same unhandled records are selected again) and removed with
 * `event.offline.clear` only once handled. Nothing is done twice either: the IDs handled are saved before the
 * clear, so records read again after a failed clear or a crash are only cleared (a callback form would
 * otherwise ring the client twice). An event that keeps failing with a retryable error is given up after
 * MAX_ATTEMPTS reads; one that fails for good is logged and cleared.
 */
import type { RestCaller } from '../bitrix/telephony.ts';
import type { PhpObject } from '../bitrix/php-query.ts';
import type { Logger } from '../log/logger.ts';
import type { Store } from '../store/db.ts';
import type { BitrixEvents } from './bitrix-events.ts';

const PROCESS_KEY = 'offline-events/process_id';
/** IDs handled and not yet confirmed cleared (bounded: a clear confirms them all). */
const HANDLED_KEY = 'offline-events/handled';
const MAX_ATTEMPTS = 5;
const BATCH = 50;

interface OfflineEvent {
  ID?: string;
  EVENT_NAME?: string;
  EVENT_DATA?: unknown;
}

export class OfflineEvents {
  readonly #o: { client: RestCaller; events: BitrixEvents; store: Store; intervalMs: number; log: Logger };
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  /** Reads of events not handled yet (in memory: a restart gives them another MAX_ATTEMPTS). */
  readonly #attempts = new Map<string, number>();
  /** Whether the last poll cleared anything (a full page of failures must not re-poll at once). */
  #progress = false;

  constructor(o: { client: RestCaller; events: BitrixEvents; store: Store; intervalMs: number; log: Logger }) {
    this.#o = o;
    this.#log = o.log.child({ component: 'offline-events' });
  }

  start(): void {
    this.#stopped = false;
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** One poll: returns how many events were read (tests call it directly). */
  async pollOnce(): Promise<number> {
    // A stop during this poll cuts it short (a poll made by hand after stop() runs through).
    const cutShort = this.#stopped ? () => false : () => this.#stopped;
    const store = this.#o.store;
    const processId = store.getKv<string>(PROCESS_KEY);
    const res = await this.#o.client.call<{ process_id?: string | null; events?: OfflineEvent[] }>('event.offline.get', {
      clear: 0, limit: BATCH, ...(processId ? { process_id: processId } : {}),
    });
    const events = Array.isArray(res.result?.events) ? res.result.events : [];
    const given = typeof res.result?.process_id === 'string' && res.result.process_id ? res.result.process_id : undefined;
    if (given && given !== processId) store.setKv(PROCESS_KEY, given);
    const pid = given ?? processId;
    if (!pid && events.length > 0) {
      this.#log.warn('event.offline.get gave no process_id: the events read cannot be cleared and will be read again', { code: 'E_BITRIX' });
    }
    const handled = new Set(store.getKv<string[]>(HANDLED_KEY) ?? []);
    const toClear: string[] = [];
    for (const e of events) {
      if (cutShort()) break; // the rest stay in Bitrix24's queue for the next start
      const id = e.ID;
      if (id !== undefined && handled.has(id)) {
        toClear.push(id); // handled before a clear that failed (or a crash): only cleared now
        continue;
      }
      const data = e.EVENT_DATA && typeof e.EVENT_DATA === 'object' ? stringify(e.EVENT_DATA) : undefined;
      const outcome = this.#o.events.handle(e.EVENT_NAME, data);
      // A malformed event (4xx) is not worth another read; a retryable failure is, a few times.
      let done = (await outcome.done) !== false;
      // Decided while shutting down (the limiter let its waiters go): not a verdict, read again next start.
      if (cutShort()) break;
      if (!done && id !== undefined) {
        const n = (this.#attempts.get(id) ?? 0) + 1;
        this.#attempts.set(id, n);
        if (n >= MAX_ATTEMPTS) {
          this.#log.error(`offline event ${id} (${e.EVENT_NAME ?? '?'}) failed ${n} times: given up`, { code: 'E_BITRIX' });
          done = true;
        }
      }
      if (done && id !== undefined) {
        this.#attempts.delete(id);
        handled.add(id);
        toClear.push(id);
        store.setKv(HANDLED_KEY, [...handled]);
      }
    }
    this.#progress = toClear.length > 0;
    if (toClear.length > 0 && pid) {
      await this.#o.client.call('event.offline.clear', { process_id: pid, id: toClear });
      for (const id of toClear) handled.delete(id);
      store.setKv(HANDLED_KEY, [...handled].slice(-500));
    }
    return events.length;
  }

  #schedule(delay: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.pollOnce()
        .then((n) => this.#schedule(n >= BATCH && this.#progress ? 0 : this.#o.intervalMs))
        .catch((err: Error) => {
          this.#log.warn(`event.offline.get failed: ${err.message}`);
          this.#schedule(Math.max(this.#o.intervalMs, 10_000));
        });
    }, delay);
    this.#timer.unref();
  }
}

/** EVENT_DATA comes as JSON; the handler takes the same string-valued shape as a posted form. */
function stringify(v: object): PhpObject {
  return JSON.parse(JSON.stringify(v), (_k, x: unknown) => (typeof x === 'number' || typeof x === 'boolean' ? String(x) : x)) as PhpObject;
}
