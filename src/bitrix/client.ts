import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import type { Logger } from '../log/logger.ts';
import type { AuthEndpoint, BitrixAuth } from './auth.ts';
import { BitrixError, classifyBitrixError } from './errors.ts';
import type { LeakyBucket } from './limiter.ts';
import { toPhpQuery } from './php-query.ts';

/** The `time` block Bitrix24 adds to every reply (limits.md). */
export interface BitrixTime {
  start: number;
  finish: number;
  duration: number;
  processing: number;
  date_start: string;
  date_finish: string;
  operating_reset_at?: number;
  operating?: number;
}

export interface BitrixResponse<T> {
  result: T;
  /** List methods: how many records match. */
  total?: number;
  /** List methods: the `start` of the next page, absent on the last page. */
  next?: number;
  time?: BitrixTime;
}

export interface BatchCommand {
  method: string;
  /** May hold `$result[<earlier key>][FIELD]` references (batch.md). */
  params?: object;
}

export interface BatchResponse {
  /** Results of the commands that succeeded, by key. */
  results: Record<string, unknown>;
  /** Classified errors of the commands that failed, by key. */
  errors: Record<string, BitrixError>;
  totals: Record<string, number>;
  next: Record<string, number>;
  /** Keys that neither succeeded nor failed: not run because `halt` stopped the batch earlier. */
  skipped: string[];
  time?: BitrixTime;
}

export interface BitrixClientOptions {
  /** Per-request timeout (default 30 s; Bitrix24 itself stops a request after 60 s). */
  timeoutMs?: number;
  now?: () => number;
}

/** Bitrix24 refuses batches longer than this (batch.md). */
export const MAX_BATCH_COMMANDS = 50;

interface Envelope {
  result?: unknown;
  total?: number | string;
  next?: number | string;
  time?: BitrixTime;
  error?: unknown;
  error_description?: unknown;
}

interface RawBatchResult {
  result?: unknown;
  result_error?: unknown;
  result_total?: unknown;
  result_next?: unknown;
}

/**
 * Bitrix24 REST over HTTP: POST `<base><method>.json` with a JSON body (data-encoding.md recommends JSON for
 * nested params). Every request holds a slot of the limiter while it is in flight. Failures come back as classified
 * BitrixErrors; the only retry done here is the one after an OAuth token refresh — back-off and retries of
 * retryable errors belong to the caller's durable outbox.
 */
export class BitrixClient {
  readonly #auth: BitrixAuth;
  readonly #limiter: LeakyBucket;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #http: AxiosInstance;
  readonly #agents: [http.Agent, https.Agent];

  constructor(auth: BitrixAuth, limiter: LeakyBucket, logger: Logger, options: BitrixClientOptions = {}) {
    this.#auth = auth;
    this.#limiter = limiter;
    this.#log = logger.child({ component: 'bitrix' });
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#now = options.now ?? Date.now;
    this.#agents = [new http.Agent({ keepAlive: true }), new https.Agent({ keepAlive: true })];
    this.#http = axios.create({
      httpAgent: this.#agents[0],
      httpsAgent: this.#agents[1],
      // Any status is an answer to classify; a redirect means a wrong portal URL (http→https, moved domain).
      validateStatus: () => true,
      maxRedirects: 0,
      headers: { Accept: 'application/json' },
    });
  }

  async call<T = unknown>(method: string, params: object = {}, opts: { timeoutMs?: number } = {}): Promise<BitrixResponse<T>> {
    for (let attempt = 0; ; attempt++) {
      let endpoint: AuthEndpoint | undefined;
      const started = this.#now();
      try {
        const res = await this.#limiter.run(method, async () => {
          endpoint = await this.#auth.endpoint();
          return this.#post(endpoint, method, params, opts.timeoutMs);
        });
        this.#log.debug(`${method} ok in ${this.#now() - started} ms`);
        return res as BitrixResponse<T>;
      } catch (err) {
        if (!(err instanceof BitrixError)) throw err;
        this.#applyLimits(err);
        this.#log.debug(`${method} failed in ${this.#now() - started} ms: ${err.message}`);
        if (err.kind === 'auth' && endpoint && attempt === 0 && (await this.#auth.onAuthError(err, endpoint))) continue;
        throw err;
      }
    }
  }

  /** The per-request timeout (ms) when a call does not give its own. */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** True while `method` is held back after OPERATION_TIME_LIMIT (its calls wait in the limiter). */
  isPaused(method: string): boolean {
    return this.#limiter.isPaused(method);
  }

  /** Up to 50 commands in one request (one slot of the rate limit). Per-command errors do not throw. */
  async batch(commands: Record<string, BatchCommand>, opts: { halt?: boolean; timeoutMs?: number } = {}): Promise<BatchResponse> {
    const keys = Object.keys(commands);
    if (keys.length > MAX_BATCH_COMMANDS) {
      throw new BitrixError({ method: 'batch', bitrixCode: 'ERROR_BATCH_LENGTH_EXCEEDED', kind: 'permanent', retryable: false },
        `Bitrix24 batch: ${keys.length} commands given, at most ${MAX_BATCH_COMMANDS} are allowed`);
    }
    const out: BatchResponse = { results: {}, errors: {}, totals: {}, next: {}, skipped: [] };
    if (keys.length === 0) return out;
    const cmd: Record<string, string> = {};
    for (const key of keys) {
      const { method, params } = commands[key] as BatchCommand;
      const query = params ? toPhpQuery(params) : '';
      cmd[key] = query ? `${method}?${query}` : method;
    }
    const res = await this.call<RawBatchResult>('batch', { halt: opts.halt ? 1 : 0, cmd }, opts);
    if (res.time) out.time = res.time;
    const raw = res.result ?? {};
    const results = asRecord(raw.result);
    const errors = asRecord(raw.result_error);
    const totals = asRecord(raw.result_total);
    const next = asRecord(raw.result_next);
    for (const key of keys) {
      const method = (commands[key] as BatchCommand).method;
      if (key in errors) {
        const e = (errors[key] ?? {}) as { error?: unknown; error_description?: unknown };
        const err = classifyBitrixError({
          method, error: typeof e.error === 'string' ? e.error : 'ERROR_UNEXPECTED_ANSWER',
          errorDescription: typeof e.error_description === 'string' ? e.error_description : undefined, now: this.#now(),
        });
        this.#applyLimits(err);
        out.errors[key] = err;
      } else if (key in results) {
        out.results[key] = results[key];
        if (totals[key] !== undefined) out.totals[key] = Number(totals[key]);
        if (next[key] !== undefined) out.next[key] = Number(next[key]);
      } else {
        out.skipped.push(key);
      }
    }
    return out;
  }

  /**
   * Second step of attachRecord without FILE_CONTENT: POST the file as multipart field `fieldName` to the
   * `uploadUrl` Bitrix24 returned (the URL carries its own one-time credentials).
   */
  async upload(uploadUrl: string, fieldName: string, filename: string, data: Uint8Array,
    opts: { timeoutMs?: number } = {}): Promise<BitrixResponse<unknown>> {
    const form = new FormData();
    form.append(fieldName, new Blob([data]), filename);
    const started = this.#now();
    try {
      const parsed = await this.#limiter.run('upload', async () => {
        let res: AxiosResponse;
        try {
          res = await this.#http.post(uploadUrl, form, { timeout: opts.timeoutMs ?? Math.max(this.#timeoutMs, 120_000) });
        } catch (err) {
          throw networkError('upload', err);
        }
        return this.#parse('upload', res);
      });
      this.#log.debug(`upload of ${filename} (${data.byteLength} bytes) ok in ${this.#now() - started} ms`);
      return parsed;
    } catch (err) {
      if (err instanceof BitrixError) this.#applyLimits(err);
      throw err;
    }
  }

  /** Releases the keep-alive sockets. The limiter is not closed: it may be shared with other clients of the portal. */
  close(): void {
    for (const agent of this.#agents) agent.destroy();
  }

  async #post(endpoint: AuthEndpoint, method: string, params: object, timeoutMs?: number): Promise<BitrixResponse<unknown>> {
    let res: AxiosResponse;
    try {
      res = await this.#http.post(`${endpoint.baseUrl}${method}.json`, { ...params, ...endpoint.authParams }, {
        timeout: timeoutMs ?? this.#timeoutMs,
        headers: { 'Content-Type': 'application/json' },
      });
    } catch (err) {
      throw networkError(method, err);
    }
    return this.#parse(method, res);
  }

  #parse(method: string, res: AxiosResponse): BitrixResponse<unknown> {
    const body = envelopeOf(res.data);
    const retryAfter = Number(res.headers['retry-after']);
    const retryAfterSec = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined;
    if (body && typeof body.error === 'string') {
      throw classifyBitrixError({
        method, httpStatus: res.status, error: body.error,
        errorDescription: typeof body.error_description === 'string' ? body.error_description : undefined,
        operatingResetAt: body.time?.operating_reset_at, retryAfterSec, now: this.#now(),
      });
    }
    if (res.status >= 300 || !body || !('result' in body)) {
      const location = typeof res.headers.location === 'string' ? safeOrigin(res.headers.location) : undefined;
      throw classifyBitrixError({
        method, httpStatus: res.status, retryAfterSec,
        ...(res.status < 300 ? { error: 'ERROR_UNEXPECTED_ANSWER' } : {}),
        errorDescription: res.status >= 300 && res.status < 400
          ? `redirected${location ? ` to ${location}` : ''}: check the portal address (https, current domain)`
          : 'the reply is not a Bitrix24 REST envelope',
      });
    }
    const out: BitrixResponse<unknown> = { result: body.result };
    if (body.total !== undefined) out.total = Number(body.total);
    if (body.next !== undefined) out.next = Number(body.next);
    if (body.time) out.time = body.time;
    return out;
  }

  #applyLimits(err: BitrixError): void {
    if (err.bitrixCode === 'QUERY_LIMIT_EXCEEDED' || err.bitrixCode === 'OVERLOAD_LIMIT') {
      this.#limiter.penalize(err.retryAfterMs ?? 1000);
    } else if (err.kind === 'operating-limit') {
      this.#limiter.pauseMethod(err.method, this.#now() + (err.retryAfterMs ?? 60_000));
    }
  }
}

function envelopeOf(data: unknown): Envelope | undefined {
  if (typeof data === 'string') {
    try {
      data = JSON.parse(data);
    } catch {
      return undefined;
    }
  }
  return data && typeof data === 'object' && !Array.isArray(data) ? (data as Envelope) : undefined;
}

/** PHP encodes an empty array as `[]` and a list-keyed one (batch keys '0','1') as a JSON list. */
function asRecord(value: unknown): Record<string, unknown> {
  if (Array.isArray(value)) return Object.fromEntries(value.map((v, i) => [String(i), v]));
  return value && typeof value === 'object' ? (value as Record<string, unknown>) : {};
}

/** The request never got an answer. The axios error is not kept as cause: its config holds the URL and body. */
function networkError(method: string, err: unknown): BitrixError {
  const e = err as { code?: string; message?: string };
  return classifyBitrixError({ method, networkCode: e.code ?? 'ERR_NETWORK', cause: new Error(e.message ?? String(err)) });
}

function safeOrigin(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}
