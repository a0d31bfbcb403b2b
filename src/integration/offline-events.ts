/**
 * Offline events (events.mode: offline) for PBXes Bitrix24 cannot reach: the handlers are bound with
 * `event.bind … event_type=offline` (CLI `event-bind --offline`) and Bitrix24 queues the events; the daemon
 * polls them and feeds them to the same handler as the online route. No token check: the request was made with
 * our own credentials. Per the docs the methods work in an application context (local application / OAuth).
 *
 * Nothing is lost to a crash: events are read with `clear: 0` under our process_id (kept in the state
 * database, so after a restart the same unhandled records are selected again) and removed with
 * `event.offline.clear` only once handled — a click is committed as pending before its Originate is sent, and a
 * click delivered twice is recognised by its CALL_ID.
 */
import type { RestCaller } from '../bitrix/telephony.ts';
import type { PhpObject } from '../bitrix/php-query.ts';
import type { Logger } from '../log/logger.ts';
import type { Store } from '../store/db.ts';
import type { BitrixEvents } from './bitrix-events.ts';

const PROCESS_KEY = 'offline-events/process_id';

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

  /** One poll: returns how many events were handled (tests call it directly). */
  async pollOnce(): Promise<number> {
    const processId = this.#o.store.getKv<string>(PROCESS_KEY);
    const res = await this.#o.client.call<{ process_id?: string | null; events?: OfflineEvent[] }>('event.offline.get', {
      clear: 0, limit: 50, ...(processId ? { process_id: processId } : {}),
    });
    const events = Array.isArray(res.result?.events) ? res.result.events : [];
    const given = res.result?.process_id;
    if (typeof given === 'string' && given !== processId) this.#o.store.setKv(PROCESS_KEY, given);
    const handled: string[] = [];
    for (const e of events) {
      const data = e.EVENT_DATA && typeof e.EVENT_DATA === 'object' ? stringify(e.EVENT_DATA) : undefined;
      const outcome = this.#o.events.handle(e.EVENT_NAME, data);
      // A malformed event (4xx) is not worth another delivery; a failed one is read again next time.
      if ((await outcome.done) !== false && e.ID !== undefined) handled.push(e.ID);
    }
    const pid = typeof given === 'string' ? given : processId;
    if (handled.length > 0 && pid) await this.#o.client.call('event.offline.clear', { process_id: pid, id: handled });
    return events.length;
  }

  #schedule(delay: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.pollOnce()
        .then((n) => this.#schedule(n >= 50 ? 0 : this.#o.intervalMs))
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
