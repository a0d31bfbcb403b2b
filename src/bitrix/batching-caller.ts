/**
 * Transparent batching: REST calls made at the same moment (the outbox delivers many calls' requests
 * concurrently, one per call) leave as one `batch` request of up to 50 commands, which costs one slot of
 * Bitrix24's rate limit (2 requests/s on standard plans) instead of 50. A call made alone goes out as a plain
 * request, so nothing waits when there is no backlog.
 *
 * Requests in flight are capped (2 by default): while they are out, new calls queue up, and the next request
 * takes everything queued — so a backlog turns into full batches by itself, and an idle daemon adds no delay.
 *
 * A method Bitrix24 blocked (OPERATION_TIME_LIMIT) is never batched — a batch would carry it past the block —
 * and its calls wait in the limiter outside the in-flight cap, so they cannot hold up everything else.
 * A batch may take longer than one request: its timeout grows with its size, up to Bitrix24's own 60 s.
 *
 * Per-call ordering is the outbox's business (one request per call in flight), so commands of one batch never
 * depend on each other and `halt` is off: each command succeeds or fails on its own, and each caller gets its own
 * result or classified error (`result_error`), exactly as if it had called alone.
 */
import type { BitrixClient, BitrixResponse } from './client.ts';
import { MAX_BATCH_COMMANDS } from './client.ts';
import type { RestCaller } from './telephony.ts';

const LARGE_PARAMS_CHARS = 16 * 1024;
/** Bitrix24 stops any request after 60 s: no batch waits longer. */
const MAX_BATCH_TIMEOUT_MS = 60_000;

interface Queued {
  method: string;
  params: object;
  resolve: (r: BitrixResponse<unknown>) => void;
  reject: (e: unknown) => void;
}

export class BatchingCaller implements RestCaller {
  readonly #client: BitrixClient;
  readonly #max: number;
  readonly #maxInFlight: number;
  #inFlight = 0;
  #queue: Queued[] = [];
  #scheduled = false;
  /** Batches sent and commands carried (for status and benchmarks). */
  stats = { requests: 0, batches: 0, commands: 0 };

  constructor(client: BitrixClient, options: { maxCommands?: number; maxInFlight?: number } = {}) {
    this.#client = client;
    this.#max = Math.min(MAX_BATCH_COMMANDS, Math.max(1, options.maxCommands ?? MAX_BATCH_COMMANDS));
    this.#maxInFlight = Math.max(1, options.maxInFlight ?? 2);
  }

  call<T = unknown>(method: string, params: object = {}): Promise<BitrixResponse<T>> {
    // A recording's bytes (attachRecord FILE_CONTENT) would make a huge batch query string: sent on its own.
    if (JSON.stringify(params).length > LARGE_PARAMS_CHARS) return this.#client.call<T>(method, params);
    if (this.#client.isPaused(method)) return this.#client.call<T>(method, params);
    return new Promise<BitrixResponse<unknown>>((resolve, reject) => {
      this.#queue.push({ method, params, resolve, reject });
      if (this.#inFlight >= this.#maxInFlight) return; // sent when a request comes back
      if (this.#queue.length >= this.#max) this.#flush();
      else if (!this.#scheduled) {
        // Everything asked for in this turn of the event loop goes together.
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    }) as Promise<BitrixResponse<T>>;
  }

  upload(...args: Parameters<BitrixClient['upload']>): ReturnType<BitrixClient['upload']> {
    return this.#client.upload(...args);
  }

  #flush(): void {
    this.#scheduled = false;
    // Calls of a method blocked since they were queued leave the queue to wait on their own.
    const ready: Queued[] = [];
    for (const q of this.#queue) {
      if (this.#client.isPaused(q.method)) void this.#sendOne(q);
      else ready.push(q);
    }
    this.#queue = ready;
    while (this.#queue.length > 0 && this.#inFlight < this.#maxInFlight) {
      const chunk = this.#queue.splice(0, this.#max);
      this.stats.requests++;
      this.stats.commands += chunk.length;
      this.#inFlight++;
      const sent = chunk.length === 1 ? this.#sendOne(chunk[0]!) : this.#sendBatch(chunk);
      void sent.finally(() => {
        this.#inFlight--;
        if (this.#queue.length > 0) this.#flush();
      });
    }
  }

  async #sendOne(q: Queued): Promise<void> {
    try {
      q.resolve(await this.#client.call(q.method, q.params));
    } catch (err) {
      q.reject(err);
    }
  }

  async #sendBatch(chunk: Queued[]): Promise<void> {
    this.stats.batches++;
    const commands = Object.fromEntries(chunk.map((q, i) => [`c${i}`, { method: q.method, params: q.params }]));
    let res;
    try {
      const base = this.#client.timeoutMs;
      const timeoutMs = Math.max(base, Math.min(MAX_BATCH_TIMEOUT_MS, base * (1 + chunk.length / 25)));
      res = await this.#client.batch(commands, { halt: false, timeoutMs });
    } catch (err) {
      // The batch itself failed (network, limits, auth): every command failed the same way.
      for (const q of chunk) q.reject(err);
      return;
    }
    chunk.forEach((q, i) => {
      const key = `c${i}`;
      const error = res.errors[key];
      if (error) q.reject(error);
      else if (key in res.results) q.resolve({ result: res.results[key], ...(res.time ? { time: res.time } : {}) });
      else q.reject(new Error(`Bitrix24 batch skipped ${q.method} (${key})`));
    });
  }
}
