/**
 * Extension → Bitrix24 user, from `user.get` (UF_PHONE_INNER). Cached in SQLite so a restart while Bitrix24 is
 * unreachable still routes calls to the right people; refreshed on a cron schedule and when a call names an
 * extension we do not know (at most once a minute, so a wrong extension cannot hammer the portal).
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { BitrixClient } from '../bitrix/client.ts';
import { fetchExtensionMap, type ExtensionUser } from '../bitrix/users.ts';
import type { Logger } from '../log/logger.ts';
import type { Store } from '../store/db.ts';

const KV_KEY = 'bitrix24.extension-map';
const MIN_REFRESH_GAP_MS = 60_000;

export class UserDirectory {
  readonly #client: BitrixClient;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #cronExpr: string;
  #map = new Map<string, ExtensionUser>();
  #lastRefreshAt = 0;
  /** True once a map is known (cache or a successful refresh): until then a lookup cannot say "no such user". */
  #known = false;
  #inFlight: Promise<void> | undefined;
  #task: ScheduledTask | undefined;

  constructor(client: BitrixClient, store: Store, log: Logger, cronExpr: string) {
    this.#client = client;
    this.#store = store;
    this.#log = log.child({ component: 'users' });
    this.#cronExpr = cronExpr;
  }

  /** Loads the cached map, then refreshes from Bitrix24 (a failure keeps the cache and is logged). */
  async start(): Promise<void> {
    const cached = this.#store.getKv<Array<[string, ExtensionUser]>>(KV_KEY);
    if (cached) {
      this.#map = new Map(cached);
      this.#known = true;
    }
    await this.refresh().catch(() => undefined);
    this.#task = cron.schedule(this.#cronExpr, () => { void this.refresh().catch(() => undefined); }, { noOverlap: true, name: 'user-refresh' });
  }

  stop(): void {
    void this.#task?.destroy();
    this.#task = undefined;
  }

  get size(): number {
    return this.#map.size;
  }

  entries(): Array<[string, ExtensionUser]> {
    return [...this.#map.entries()];
  }

  refresh(): Promise<void> {
    this.#inFlight ??= (async () => {
      this.#lastRefreshAt = Date.now();
      try {
        const map = await fetchExtensionMap(this.#client, this.#log);
        this.#map = map;
        this.#known = true;
        this.#store.setKv(KV_KEY, [...map.entries()]);
        this.#log.info(`extension map refreshed: ${map.size} users with an internal number`);
      } catch (err) {
        this.#log.warn(`extension map refresh failed, keeping ${this.#map.size} cached entries: ${(err as Error).message}`);
        throw err;
      } finally {
        this.#inFlight = undefined;
      }
    })();
    return this.#inFlight;
  }

  /** The extension of a Bitrix24 user (click-to-call rings it); an unknown user triggers one refresh first. */
  async extensionFor(userId: number): Promise<string | undefined> {
    const find = () => [...this.#map.entries()].find(([, u]) => u.userId === userId && u.active)?.[0];
    // Never loaded: say Bitrix24 is unreachable rather than "this user has no number".
    if (!this.#known) await this.refresh();
    let ext = find();
    if (ext === undefined && Date.now() - this.#lastRefreshAt > MIN_REFRESH_GAP_MS) {
      await this.refresh().catch(() => undefined);
      ext = find();
    }
    return ext;
  }

  /**
   * The active user for an extension; an unknown one triggers one (rate-limited) refresh first. While no map
   * was ever loaded (Bitrix24 unreachable since start-up, empty cache) the refresh's error is thrown: the outbox
   * retries the request later instead of filing the call under the default user.
   */
  async userFor(extension: string | undefined): Promise<number | undefined> {
    if (!extension) return undefined;
    if (!this.#known) await this.refresh();
    let user = this.#map.get(extension);
    if (!user && Date.now() - this.#lastRefreshAt > MIN_REFRESH_GAP_MS) {
      await this.refresh().catch(() => undefined);
      user = this.#map.get(extension);
    }
    return user && user.active ? user.userId : undefined;
  }
}
