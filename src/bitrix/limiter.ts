/**
 * A client-side copy of Bitrix24's leaky bucket (limits.md): every request adds one to a counter that drains at
 * `ratePerSec`; above `burst` Bitrix24 answers 503 QUERY_LIMIT_EXCEEDED. Waiting here instead keeps bursts of
 * calls (a queue ringing 20 agents) fast while never tripping the portal's limit.
 *
 * The portal counts a request when it arrives, which is some time between our send and its response. So a
 * request run through {@link LeakyBucket.run} holds a slot from the moment it is sent and only starts to drain
 * once its response is back: slow connection set-up or jitter can bunch arrivals up, never push them over.
 *
 * Besides the bucket: `penalize(ms)` stops everything after a QUERY_LIMIT_EXCEEDED (another app on the same IP
 * shares the portal's counter), and `pauseMethod()` holds back one method after OPERATION_TIME_LIMIT while
 * other methods go on.
 */
export interface TimerApi {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface LeakyBucketOptions {
  ratePerSec?: number;
  burst?: number;
  /** Clock in epoch ms (tests inject a manual one). */
  now?: () => number;
  /** Timer functions (tests inject ones driven by the manual clock). */
  timers?: TimerApi;
}

interface Waiter {
  method: string | undefined;
  resolve: (release: () => void) => void;
  reject: (err: Error) => void;
}

const realTimers: TimerApi = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref(); // a pending wait must never keep the process alive on shutdown
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Shutting down is not a verdict on a request: whoever retries requests may retry this one (next start). */
function closedError(): Error {
  return Object.assign(new Error('LeakyBucket is closed'), { retryable: true });
}

export class LeakyBucket {
  readonly ratePerSec: number;
  readonly burst: number;
  readonly #now: () => number;
  readonly #timers: TimerApi;
  /** Slots of requests that got their response, draining at ratePerSec. */
  #level = 0;
  /** Slots of requests sent and not answered yet: they do not drain. */
  #inFlight = 0;
  #levelAt: number;
  #blockedUntil = 0;
  readonly #methodPausedUntil = new Map<string, number>();
  #queue: Waiter[] = [];
  #timer: unknown = undefined;
  #timerAt = Infinity;
  #closed = false;

  constructor(options: LeakyBucketOptions = {}) {
    this.ratePerSec = options.ratePerSec ?? 2;
    this.burst = options.burst ?? 50;
    if (!(this.ratePerSec > 0)) throw new RangeError(`LeakyBucket ratePerSec must be > 0, got ${this.ratePerSec}`);
    if (!(this.burst >= 1)) throw new RangeError(`LeakyBucket burst must be >= 1, got ${this.burst}`);
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? realTimers;
    this.#levelAt = this.#now();
  }

  /** Runs `send` (one HTTP request for `method`) when the bucket has room; its slot drains once it settles. */
  async run<T>(method: string | undefined, send: () => Promise<T>): Promise<T> {
    const release = await this.#acquire(method);
    try {
      return await send();
    } finally {
      release();
    }
  }

  /** Waits for room for a request that counts as answered at once (prefer {@link LeakyBucket.run}). */
  async take(method?: string): Promise<void> {
    (await this.#acquire(method))();
  }

  #acquire(method: string | undefined): Promise<() => void> {
    if (this.#closed) return Promise.reject(closedError());
    return new Promise<() => void>((resolve, reject) => {
      this.#queue.push({ method, resolve, reject });
      this.#pump();
    });
  }

  #release(): void {
    this.#drain(this.#now());
    this.#inFlight -= 1;
    this.#level += 1;
    this.#pump();
  }

  /** Global back-off: nothing is sent for `ms`, and the bucket counts as full (the portal said it is). */
  penalize(ms: number): void {
    const now = this.#now();
    this.#drain(now);
    this.#level = Math.max(this.#level, this.burst);
    this.#blockedUntil = Math.max(this.#blockedUntil, now + ms);
    this.#pump();
  }

  /** Holds `method` back until the epoch ms `untilMs` (OPERATION_TIME_LIMIT's operating_reset_at). */
  pauseMethod(method: string, untilMs: number): void {
    const key = method.toLowerCase();
    this.#methodPausedUntil.set(key, Math.max(this.#methodPausedUntil.get(key) ?? 0, untilMs));
    this.#pump();
  }

  /** True while `method` is held back by pauseMethod(). */
  isPaused(method: string): boolean {
    return this.#pausedUntil(method) > this.#now();
  }

  /** Requests currently waiting. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Rejects every waiter and clears the timer. */
  close(): void {
    this.#closed = true;
    this.#clearTimer();
    const waiters = this.#queue;
    this.#queue = [];
    for (const w of waiters) w.reject(closedError());
  }

  #drain(now: number): void {
    const elapsed = Math.max(0, now - this.#levelAt);
    this.#level = Math.max(0, this.#level - (elapsed / 1000) * this.ratePerSec);
    this.#levelAt = now;
  }

  #pausedUntil(method: string | undefined): number {
    if (method === undefined) return 0;
    const key = method.toLowerCase();
    const until = this.#methodPausedUntil.get(key);
    if (until === undefined) return 0;
    if (until <= this.#now()) {
      this.#methodPausedUntil.delete(key);
      return 0;
    }
    return until;
  }

  #pump(): void {
    if (this.#closed) return;
    const now = this.#now();
    this.#drain(now);
    let wakeAt = Infinity;
    const remaining: Waiter[] = [];
    let bucketBlocked = false;
    for (const waiter of this.#queue) {
      const paused = this.#pausedUntil(waiter.method);
      if (paused > now) {
        wakeAt = Math.min(wakeAt, paused);
        remaining.push(waiter);
        continue;
      }
      if (bucketBlocked) {
        remaining.push(waiter);
        continue;
      }
      if (this.#blockedUntil > now) {
        wakeAt = Math.min(wakeAt, this.#blockedUntil);
        bucketBlocked = true;
        remaining.push(waiter);
        continue;
      }
      if (this.#level + this.#inFlight + 1 <= this.burst + 1e-9) {
        this.#inFlight += 1;
        let released = false;
        waiter.resolve(() => {
          if (released) return;
          released = true;
          this.#release();
        });
        continue;
      }
      // Wait until enough has drained; later waiters stay behind this one (FIFO). When the in-flight requests
      // alone fill the bucket, only a response can make room, and #release() pumps again.
      const room = this.burst - this.#inFlight - 1;
      if (room >= 0) wakeAt = Math.min(wakeAt, now + Math.ceil(((this.#level - room) / this.ratePerSec) * 1000));
      bucketBlocked = true;
      remaining.push(waiter);
    }
    this.#queue = remaining;
    this.#schedule(wakeAt);
  }

  #schedule(at: number): void {
    if (at === Infinity) {
      this.#clearTimer();
      return;
    }
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#clearTimer();
    this.#timerAt = at;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#pump();
    }, Math.max(0, at - this.#now()));
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }
}
