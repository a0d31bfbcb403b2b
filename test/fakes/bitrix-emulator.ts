/**
 * A Bitrix24 portal over real HTTP on 127.0.0.1, for tests of code that speaks Bitrix24 REST. It follows the
 * official docs (bitrix24/b24restdocs): envelopes, error codes and HTTP statuses (_includes/system-errors.md),
 * webhook and OAuth URLs, batch with `$result[...]` substitution (batch.md, CRestUtil::ParseBatchQuery),
 * the leaky-bucket limit (limits.md) and the telephony.externalCall.* rules — including the 30-minute
 * re-registration rule and the two-step uploadUrl recording upload.
 *
 * Where the docs are silent the choice is marked "assumed" (e.g. the upload endpoint's reply).
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface EmuUser {
  ID: number;
  NAME: string;
  LAST_NAME: string;
  ACTIVE: boolean;
  UF_PHONE_INNER?: string;
  USER_TYPE?: 'employee' | 'extranet' | 'email';
}

export interface EmuEntity {
  CRM_ENTITY_TYPE: 'CONTACT' | 'COMPANY' | 'LEAD';
  CRM_ENTITY_ID: number;
  NAME: string;
  ASSIGNED_BY_ID: number;
  PHONES: string[];
  /** Other crm.item.* fields (what crm.item.add/update set, or what a test seeds for crm.item.list filters). */
  FIELDS?: Record<string, unknown>;
}

/** A CRM item of a type that has no EmuEntity (deals; lead/contact/company live in `entities`). */
export interface EmuItem {
  entityTypeId: number;
  id: number;
  /** crm.item.* field names as sent (camelCase, or UF_… with useOriginalUfNames). */
  fields: Record<string, unknown>;
}

export interface EmuTask {
  id: number;
  /** tasks.task.add fields as sent (TITLE, RESPONSIBLE_ID, DEADLINE, UF_CRM_TASK, …). */
  fields: Record<string, any>;
  /** Bitrix24 task STATUS: 2 pending, 5 completed. */
  status: 2 | 5;
}

export interface EmuActivity {
  ID: number;
  OWNER_TYPE_ID: number;
  OWNER_ID: number;
  TYPE_ID: 2;
  PROVIDER_ID: 'VOXIMPLANT_CALL';
  SUBJECT: string;
  fields: Record<string, unknown>;
}

export interface EmuRecord {
  filename: string;
  via: 'content' | 'url' | 'upload';
  fileId: number;
  url?: string;
  content?: Buffer;
}

export interface EmuCall {
  callId: string;
  appKey: string;
  userId: number;
  phoneNumber: string;
  type: number;
  lineNumber?: string;
  externalCallId?: string;
  callStartDate: string;
  registeredAt: number;
  crmEntityType: string | null;
  crmEntityId: number | null;
  crmCreatedLead: number | null;
  shownTo: number[];
  hiddenFrom: number[];
  finished?: { userId: number; duration: number; statusCode: string; failedReason: string; vote: number | null; activityId: number | null; at: number };
  record?: EmuRecord;
  /** Every record ever attached (attachRecord again replaces `record`). */
  records: EmuRecord[];
}

export interface LoggedRequest {
  /** The REST method as called (case kept), 'upload' for uploadUrl posts. */
  method: string;
  /** Parameters as Bitrix24 would see them (auth removed; batch sub-commands after `$result` substitution). */
  params: any;
  at: number;
  /** 0 when the connection was dropped or left hanging. */
  httpStatus: number;
  viaBatch?: boolean;
  error?: string;
}

export type EmuFault =
  | '500' | 'QUERY_LIMIT_EXCEEDED' | 'OPERATION_TIME_LIMIT' | 'expired_token' | 'network' | 'hang' | 'slow'
  | { error: string; description: string; status: number };

export interface BitrixEmulatorOptions {
  webhookUserId?: number;
  webhookSecret?: string;
  /** Bitrix24's leaky bucket; `{ ratePerSec: 2, burst: 50 }` is a standard plan. Default off. */
  rateLimit?: { ratePerSec: number; burst: number } | false;
  clientId?: string;
  clientSecret?: string;
  /** Clock for business rules (30-minute rule, token expiry). The rate limit always uses real time. */
  now?: () => number;
  /** Docs (2026-03) say register/finish work only in an app context; real portals accept webhooks too. Default false. */
  appContextOnly?: boolean;
}

interface Ctx {
  mode: 'webhook' | 'oauth';
  userId: number;
  appKey: string;
  /** What an uploadUrl needs to authenticate like the request that got it. */
  uploadBase: string;
  uploadAuth?: string;
}

interface Reply {
  result: unknown;
  total?: number;
  next?: number;
}

class EmuError extends Error {
  readonly status: number;
  readonly error: string;
  constructor(status: number, error: string, description: string) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

interface Fault {
  remaining: number;
  kind: EmuFault;
  filter?: string;
}

/** Faults that hit a whole HTTP request (a batch as a whole); the others hit one method call, also inside a batch. */
const TRANSPORT_FAULTS = new Set<EmuFault>(['500', 'QUERY_LIMIT_EXCEEDED', 'expired_token', 'network', 'hang', 'slow']);
const THIRTY_MINUTES = 30 * 60_000;
const PAGE = 50;

export class BitrixEmulator {
  readonly webhookUserId: number;
  readonly webhookSecret: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly memberId = 'a223c6b3710f85df22e9377d6c4f7553';
  readonly requests: LoggedRequest[] = [];
  readonly tokenRequests: Array<{ grantType: string; at: number; httpStatus: number; error?: string }> = [];
  users: EmuUser[] = [
    { ID: 1, NAME: 'Admin', LAST_NAME: 'Adminov', ACTIVE: true },
    { ID: 2, NAME: 'Ivan', LAST_NAME: 'Petrov', ACTIVE: true, UF_PHONE_INNER: '101' },
    { ID: 3, NAME: 'Maria', LAST_NAME: 'Ivanova', ACTIVE: true, UF_PHONE_INNER: '102' },
    { ID: 4, NAME: 'Oleg', LAST_NAME: 'Smirnov', ACTIVE: true, UF_PHONE_INNER: '103' },
  ];
  entities: EmuEntity[] = [];
  /** CRM items without an EmuEntity: deals. */
  readonly items: EmuItem[] = [];
  readonly tasks: EmuTask[] = [];
  readonly activities = new Map<number, EmuActivity>();
  readonly notifications: Array<{ method: string; userId: number; message: string; at: number }> = [];
  readonly calls = new Map<string, EmuCall>();
  readonly eventHandlers: Array<{ event: string; handler: string; auth_type: string; offline: number }> = [];
  accessTokenTtlSec = 3600;
  appContextOnly: boolean;
  scope = ['crm', 'telephony', 'user'];
  rateLimit: { ratePerSec: number; burst: number } | false;
  readonly now: () => number;

  readonly #server: http.Server;
  readonly #sockets = new Set<Socket>();
  #port = 0;
  #down = false;
  #faults: Fault[] = [];
  #waiters = new Set<() => void>();
  #bucket = { level: 0, at: Date.now() };
  readonly #access = new Map<string, number>();
  readonly #refresh = new Set<string>();
  readonly #codes = new Map<string, number>();
  readonly #uploads = new Map<string, { callId: string; filename: string }>();
  #nextId = 1000;

  constructor(opts: BitrixEmulatorOptions = {}) {
    this.webhookUserId = opts.webhookUserId ?? 1;
    this.webhookSecret = opts.webhookSecret ?? 'whsecret0123456789';
    this.clientId = opts.clientId ?? 'local.65f0a1b2c3d4e5.12345678';
    this.clientSecret = opts.clientSecret ?? 'appsecretABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
    this.rateLimit = opts.rateLimit ?? false;
    this.now = opts.now ?? Date.now;
    this.appContextOnly = opts.appContextOnly ?? false;
    this.#server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.#json(res, 500, { error: 'INTERNAL_SERVER_ERROR', error_description: String(err) });
      });
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  listen(port = 0): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        this.#port = (this.#server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => (this.#server.listening ? this.#server.close(() => resolve()) : resolve()));
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get webhookUrl(): string {
    return `${this.baseUrl}/rest/${this.webhookUserId}/${this.webhookSecret}/`;
  }

  /** The portal's REST root for OAuth apps (`client_endpoint`). */
  get clientEndpoint(): string {
    return `${this.baseUrl}/rest/`;
  }

  /** The next `n` requests (matching `methodFilter`, case-insensitive) fail this way. */
  failNext(n: number, kind: EmuFault, methodFilter?: string): void {
    this.#faults.push({ remaining: n, kind, ...(methodFilter ? { filter: methodFilter.toLowerCase() } : {}) });
  }

  /**
   * Down: the listening socket is closed (new connections are refused: ECONNREFUSED) and open connections are
   * destroyed. Up: listens again on the same port.
   */
  async setDown(on: boolean): Promise<void> {
    if (on === this.#down) return;
    this.#down = on;
    if (on) {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      for (const s of this.#sockets) s.destroy();
      await closed;
    } else {
      await this.listen(this.#port);
    }
  }

  /** Resolves once the request log satisfies `predicate`. */
  waitFor(predicate: (reqs: LoggedRequest[]) => boolean, timeoutMs = 5000): Promise<void> {
    if (predicate(this.requests)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate(this.requests)) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        const last = this.requests.slice(-5).map((r) => `${r.method}→${r.httpStatus}`).join(', ');
        reject(new Error(`BitrixEmulator.waitFor timed out after ${timeoutMs} ms (last requests: ${last || 'none'})`));
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  /** Offline events waiting for event.offline.get (EVENT_DATA as Bitrix24 stores it). */
  readonly offlineEvents: Array<{ ID: string; TIMESTAMP_X: string; EVENT_NAME: string; EVENT_DATA: unknown; EVENT_ADDITIONAL: unknown; MESSAGE_ID: string }> = [];

  /** How long a request hit by a 'slow' fault takes. */
  slowMs = 600;

  /** Offline event ID → the process_id that read it with clear=0. */
  readonly #offlineMarks = new Map<string, string>();

  queueOfflineEvent(name: string, data: unknown): void {
    const id = String(this.offlineEvents.length + 1 + Math.floor(Math.random() * 1e6));
    this.offlineEvents.push({ ID: id, TIMESTAMP_X: new Date().toISOString(), EVENT_NAME: name.toUpperCase(), EVENT_DATA: data, EVENT_ADDITIONAL: false, MESSAGE_ID: id });
  }

  // ---- OAuth ----

  /** A fresh token pair as the install handler would store it (shape of src/bitrix Tokens). */
  issueTokens(): { accessToken: string; refreshToken: string; expiresAt: number; clientEndpoint: string; memberId: string; domain: string } {
    const { access, refresh } = this.#mint();
    return {
      accessToken: access, refreshToken: refresh, expiresAt: this.now() + this.accessTokenTtlSec * 1000,
      clientEndpoint: this.clientEndpoint, memberId: this.memberId, domain: `127.0.0.1:${this.#port}`,
    };
  }

  /** A one-time authorization code valid 30 s (settings/oauth/index.md). */
  issueAuthorizationCode(): string {
    const code = randomBytes(16).toString('hex');
    this.#codes.set(code, this.now() + 30_000);
    return code;
  }

  /** Every access token issued so far expires now. */
  expireAccessTokens(): void {
    for (const token of this.#access.keys()) this.#access.set(token, 0);
  }

  /** Refresh tokens stop working (app removed, 180 days passed): refresh answers invalid_grant. */
  revokeRefreshTokens(): void {
    this.#refresh.clear();
  }

  #mint(): { access: string; refresh: string } {
    const access = randomBytes(16).toString('hex');
    const refresh = randomBytes(16).toString('hex');
    this.#access.set(access, this.now() + this.accessTokenTtlSec * 1000);
    this.#refresh.add(refresh);
    return { access, refresh };
  }

  #token(params: Record<string, any>, res: http.ServerResponse): void {
    const grantType = String(params.grant_type ?? '');
    const fail = (status: number, error: string, description: string) => {
      this.tokenRequests.push({ grantType, at: this.now(), httpStatus: status, error });
      this.#json(res, status, { error, error_description: description });
    };
    if (params.client_id !== this.clientId || params.client_secret !== this.clientSecret) {
      return fail(401, 'invalid_client', 'Invalid client');
    }
    if (grantType === 'refresh_token') {
      const token = String(params.refresh_token ?? '');
      if (!this.#refresh.delete(token)) return fail(400, 'invalid_grant', 'Invalid grant');
    } else if (grantType === 'authorization_code') {
      const code = String(params.code ?? '');
      const until = this.#codes.get(code);
      this.#codes.delete(code);
      if (until === undefined || until < this.now()) return fail(400, 'invalid_grant', 'Invalid grant');
    } else {
      return fail(400, 'invalid_request', 'Unsupported grant_type');
    }
    const { access, refresh } = this.#mint();
    this.tokenRequests.push({ grantType, at: this.now(), httpStatus: 200 });
    this.#json(res, 200, {
      access_token: access, expires: Math.floor(this.now() / 1000) + this.accessTokenTtlSec, expires_in: this.accessTokenTtlSec,
      scope: 'app', domain: 'oauth.bitrix.info', server_endpoint: `${this.baseUrl}/rest/`, status: 'L',
      client_endpoint: this.clientEndpoint, member_id: this.memberId, user_id: 1, refresh_token: refresh,
    });
  }

  // ---- HTTP plumbing ----

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const raw = await readBody(req);
    const contentType = String(req.headers['content-type'] ?? '');
    const query = parsePhpQuery(url.search.slice(1));

    if (/^\/oauth\/token\/?$/.test(url.pathname)) {
      return this.#token({ ...query, ...parseBody(raw, contentType) }, res);
    }
    if (!url.pathname.startsWith('/rest/')) return this.#json(res, 404, { error: 'NOT_FOUND', error_description: 'Not found' });

    const segments = url.pathname.slice('/rest/'.length).split('/').filter(Boolean);
    let webhook: { userId: string; secret: string } | undefined;
    let methodSeg: string | undefined;
    if (segments.length === 3 && /^\d+$/.test(segments[0] as string)) {
      webhook = { userId: segments[0] as string, secret: segments[1] as string };
      methodSeg = segments[2];
    } else if (segments.length === 1) {
      methodSeg = segments[0];
    }
    const method = (methodSeg ?? '').replace(/\.(json|xml)$/i, '');

    if (method.toLowerCase() === 'upload') return this.#upload(query, raw, contentType, res);

    const params: Record<string, any> = { ...query, ...parseBody(raw, contentType) };
    const authToken = params.auth;
    delete params.auth;
    const entry: LoggedRequest = { method, params, at: this.now(), httpStatus: 0 };

    if (!methodSeg) return this.#fail(res, entry, new EmuError(404, 'ERROR_METHOD_NOT_FOUND', 'Method not found!'));

    const subMethods = method.toLowerCase() === 'batch' ? batchMethods(params.cmd) : [];
    let fault = this.#takeFault([method, ...subMethods], true);
    if (fault === 'slow') {
      // A slow portal: answered normally, after slowMs.
      await new Promise((r) => setTimeout(r, this.slowMs));
      fault = undefined;
    }
    if (fault === 'network' || fault === 'hang') {
      this.#log(entry);
      if (fault === 'network') req.socket.destroy();
      return; // 'hang': never answer; close() destroys the socket
    }
    if (fault !== undefined) return this.#fail(res, entry, faultError(fault));

    if (this.rateLimit && !this.#bucketTake(this.rateLimit)) {
      return this.#fail(res, entry, new EmuError(503, 'QUERY_LIMIT_EXCEEDED', 'Too many requests'));
    }

    let ctx: Ctx;
    try {
      ctx = this.#authenticate(webhook, authToken);
    } catch (err) {
      return this.#fail(res, entry, err as EmuError);
    }

    const isBatch = method.toLowerCase() === 'batch';
    // The batch request arrived before its commands ran: log it first, with its status filled in afterwards.
    if (isBatch) this.requests.push(entry);
    try {
      const reply = isBatch ? this.#batch(params, ctx) : this.#invoke(method, params, ctx);
      entry.httpStatus = 200;
      if (!isBatch) this.requests.push(entry);
      this.#notify();
      this.#json(res, 200, envelope(reply, this.now()));
    } catch (err) {
      if (!(err instanceof EmuError)) throw err;
      if (isBatch) this.requests.splice(this.requests.indexOf(entry), 1);
      this.#fail(res, entry, err);
    }
  }

  #authenticate(webhook: { userId: string; secret: string } | undefined, token: unknown): Ctx {
    if (webhook) {
      if (Number(webhook.userId) !== this.webhookUserId || webhook.secret !== this.webhookSecret) {
        throw new EmuError(401, 'INVALID_CREDENTIALS', 'Invalid request credentials');
      }
      return {
        mode: 'webhook', userId: this.webhookUserId, appKey: `webhook:${this.webhookUserId}`,
        uploadBase: `${this.baseUrl}/rest/${webhook.userId}/${webhook.secret}/upload.json`,
      };
    }
    if (typeof token !== 'string' || token === '') throw new EmuError(401, 'NO_AUTH_FOUND', 'Wrong authorization data');
    const expiresAt = this.#access.get(token);
    if (expiresAt === undefined) throw new EmuError(401, 'invalid_token', 'The access token provided is invalid.');
    if (expiresAt <= this.now()) throw new EmuError(401, 'expired_token', 'The access token provided has expired.');
    return { mode: 'oauth', userId: 1, appKey: `app:${this.clientId}`, uploadBase: `${this.baseUrl}/rest/upload.json`, uploadAuth: token };
  }

  #takeFault(methods: string[], transport: boolean): EmuFault | undefined {
    const lower = methods.map((m) => m.toLowerCase());
    for (const fault of this.#faults) {
      const isTransport = TRANSPORT_FAULTS.has(fault.kind);
      // A method-level fault is consumed by a single method call: at HTTP level only for a non-batch request.
      if (transport && !isTransport && lower[0] === 'batch') continue;
      if (!transport && isTransport) continue;
      if (fault.filter !== undefined && !lower.includes(fault.filter)) continue;
      fault.remaining--;
      if (fault.remaining <= 0) this.#faults = this.#faults.filter((f) => f !== fault);
      return fault.kind;
    }
    return undefined;
  }

  #bucketTake(limit: { ratePerSec: number; burst: number }): boolean {
    const now = Date.now();
    this.#bucket.level = Math.max(0, this.#bucket.level - ((now - this.#bucket.at) / 1000) * limit.ratePerSec);
    this.#bucket.at = now;
    if (this.#bucket.level + 1 > limit.burst) return false;
    this.#bucket.level += 1;
    return true;
  }

  #fail(res: http.ServerResponse, entry: LoggedRequest, err: EmuError): void {
    entry.httpStatus = err.status;
    entry.error = err.error;
    this.#log(entry);
    const body: Record<string, unknown> = { error: err.error, error_description: err.message };
    // Assumed: a 429 carries the `time` block with operating_reset_at, like every other cloud reply (limits.md).
    if (err.error === 'OPERATION_TIME_LIMIT') body.time = timeBlock(this.now());
    this.#json(res, err.status, body);
  }

  #log(entry: LoggedRequest): void {
    this.requests.push(entry);
    this.#notify();
  }

  #notify(): void {
    for (const check of [...this.#waiters]) check();
  }

  #json(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  // ---- batch ----

  #batch(params: Record<string, any>, ctx: Ctx): Reply {
    const cmd = params.cmd;
    const entries: Array<[string, string]> = cmd && typeof cmd === 'object'
      ? Object.entries(cmd).map(([k, v]) => [k, String(v)])
      : [];
    if (entries.length > 50) throw new EmuError(400, 'ERROR_BATCH_LENGTH_EXCEEDED', 'Max batch length exceeded');
    const halt = ['1', 'true', 'y'].includes(String(params.halt ?? '0').toLowerCase());
    const state = { result: {} as Record<string, unknown>, result_error: {} as Record<string, unknown>,
      result_total: {} as Record<string, unknown>, result_next: {} as Record<string, unknown>, result_time: {} as Record<string, unknown> };
    for (const [key, command] of entries) {
      const qIndex = command.indexOf('?');
      const method = (qIndex < 0 ? command : command.slice(0, qIndex)).trim();
      const subParams = substitute(parsePhpQuery(qIndex < 0 ? '' : command.slice(qIndex + 1)), state) as Record<string, any>;
      delete subParams.auth;
      const entry: LoggedRequest = { method, params: subParams, at: this.now(), httpStatus: 0, viaBatch: true };
      try {
        if (method.toLowerCase() === 'batch') throw new EmuError(400, 'ERROR_BATCH_METHOD_NOT_ALLOWED', 'Method is not allowed for batch usage');
        const fault = this.#takeFault([method], false);
        if (fault !== undefined) throw faultError(fault);
        const reply = this.#invoke(method, subParams, ctx);
        state.result[key] = reply.result;
        if (reply.total !== undefined) state.result_total[key] = reply.total;
        if (reply.next !== undefined) state.result_next[key] = reply.next;
        state.result_time[key] = timeBlock(this.now());
        entry.httpStatus = 200;
        this.#log(entry);
      } catch (err) {
        if (!(err instanceof EmuError)) throw err;
        state.result_error[key] = { error: err.error, error_description: err.message };
        entry.httpStatus = err.status;
        entry.error = err.error;
        this.#log(entry);
        if (halt) break;
      }
    }
    const phpArray = (o: Record<string, unknown>) => (Object.keys(o).length === 0 ? [] : o);
    return {
      result: {
        result: phpArray(state.result), result_error: phpArray(state.result_error), result_total: phpArray(state.result_total),
        result_next: phpArray(state.result_next), result_time: phpArray(state.result_time),
      },
    };
  }

  // ---- methods ----

  #invoke(method: string, params: Record<string, any>, ctx: Ctx): Reply {
    const handler = this.#methods[method.toLowerCase()];
    if (!handler) throw new EmuError(404, 'ERROR_METHOD_NOT_FOUND', 'Method not found!');
    return handler(params, ctx);
  }

  readonly #methods: Record<string, (p: Record<string, any>, ctx: Ctx) => Reply> = {
    'profile': (_p, ctx) => {
      const u = this.users.find((x) => x.ID === ctx.userId);
      return { result: { ID: String(ctx.userId), ADMIN: true, NAME: u?.NAME ?? '', LAST_NAME: u?.LAST_NAME ?? '', PERSONAL_GENDER: '', TIME_ZONE: '' } };
    },
    'scope': () => ({ result: [...this.scope] }),
    'app.info': (_p, ctx) => {
      if (ctx.mode !== 'oauth') throw new EmuError(400, 'ACCESS_DENIED', 'Access denied! Application context required');
      return { result: { ID: 1, CODE: this.clientId, VERSION: 1, STATUS: 'L', INSTALLED: true, PAYMENT_EXPIRED: 'N', DAYS: null,
        LANGUAGE_ID: 'en', LICENSE: 'en_std', LICENSE_TYPE: 'std', LICENSE_FAMILY: 'std' } };
    },
    'user.get': (p) => this.#userGet(p),
    'event.bind': (p, ctx) => {
      this.#requireApp(ctx);
      const event = String(p.event ?? p.EVENT ?? '').toUpperCase();
      const handler = String(p.handler ?? p.HANDLER ?? '');
      if (!/^ON[A-Z0-9_]+$/.test(event)) throw new EmuError(400, 'ERROR_EVENT_NOT_FOUND', 'Event not found');
      if (!handler && String(p.event_type ?? 'online') !== 'offline') throw new EmuError(400, 'ERROR_CORE', 'Handler is empty');
      const authType = String(p.auth_type ?? p.AUTH_TYPE ?? '0');
      if (this.eventHandlers.some((h) => h.event === event && h.handler === handler && h.auth_type === authType)) {
        throw new EmuError(400, 'ERROR_CORE', 'Handler already binded'); // assumed wording
      }
      this.eventHandlers.push({ event, handler, auth_type: authType, offline: String(p.event_type) === 'offline' ? 1 : 0 });
      return { result: true };
    },
    // Offline events (api-reference/events/event-offline-get.md, event-offline-clear.md): queued by
    // queueOfflineEvent. clear=1 (the default) deletes what it returns; clear=0 marks it with a process_id
    // (the given one, or a new one) — marked records are read again only by that process_id, and removed by
    // event.offline.clear.
    'event.offline.get': (p, ctx) => {
      this.#requireApp(ctx);
      const limit = Math.max(1, Math.min(50, Number(p.limit ?? 50)));
      const clear = String(p.clear ?? '1') !== '0';
      const given = typeof p.process_id === 'string' && p.process_id !== '' ? p.process_id : undefined;
      const visible = this.offlineEvents.filter((e) => !this.#offlineMarks.has(e.ID) || this.#offlineMarks.get(e.ID) === given).slice(0, limit);
      if (clear) {
        for (const e of visible) this.offlineEvents.splice(this.offlineEvents.indexOf(e), 1);
        return { result: { process_id: null, events: visible.map((e) => ({ ...e })) } };
      }
      const processId = given ?? randomBytes(16).toString('hex');
      for (const e of visible) this.#offlineMarks.set(e.ID, processId);
      return { result: { process_id: processId, events: visible.map((e) => ({ ...e })) } };
    },
    'event.offline.clear': (p, ctx) => {
      this.#requireApp(ctx);
      const processId = String(p.process_id ?? '');
      if (!processId) throw new EmuError(400, 'ERROR_ARGUMENT', 'Argument "process_id" is null or empty');
      const ids = Array.isArray(p.id) ? p.id.map(String) : p.id && typeof p.id === 'object' ? Object.values(p.id).map(String) : undefined;
      const gone = this.offlineEvents.filter((e) => this.#offlineMarks.get(e.ID) === processId && (!ids || ids.includes(e.ID)));
      for (const e of gone) {
        this.offlineEvents.splice(this.offlineEvents.indexOf(e), 1);
        this.#offlineMarks.delete(e.ID);
      }
      return { result: true };
    },
    'event.get': (_p, ctx) => {
      this.#requireApp(ctx);
      return { result: this.eventHandlers.map((h) => ({ ...h })) };
    },
    'event.unbind': (p, ctx) => {
      this.#requireApp(ctx);
      const event = String(p.event ?? p.EVENT ?? '').toUpperCase();
      const handler = p.handler ?? p.HANDLER;
      const before = this.eventHandlers.length;
      const keep = this.eventHandlers.filter((h) => !((!event || h.event === event) && (handler === undefined || h.handler === handler)));
      this.eventHandlers.splice(0, this.eventHandlers.length, ...keep);
      return { result: { count: before - keep.length } };
    },
    'crm.duplicate.findbycomm': (p) => {
      const type = String(p.type ?? p.TYPE ?? '').toUpperCase();
      const values = toArray(p.values ?? p.VALUES).map(String);
      if (type !== 'PHONE' && type !== 'EMAIL') throw new EmuError(400, 'ERROR_CORE', 'Communication type is not defined');
      if (values.length > 20) throw new EmuError(400, 'ERROR_CORE', 'Too many values'); // assumed wording
      const entityType = p.entity_type ? String(p.entity_type).toUpperCase() : undefined;
      const found: Record<string, number[]> = {};
      if (type === 'PHONE') {
        for (const e of this.entities) {
          if (entityType && e.CRM_ENTITY_TYPE !== entityType) continue;
          if (!values.some((v) => e.PHONES.some((ph) => samePhone(ph, v)))) continue;
          (found[e.CRM_ENTITY_TYPE] ??= []).push(e.CRM_ENTITY_ID);
        }
      }
      return { result: Object.keys(found).length ? found : [] };
    },
    'telephony.externalcall.searchcrmentities': (p) => {
      const phone = String(p.PHONE_NUMBER ?? '');
      if (!phone) throw new EmuError(400, 'ERROR_CORE', 'PHONE_NUMBER is empty');
      return { result: this.entities.filter((e) => e.PHONES.some((ph) => samePhone(ph, phone))).map((e) => this.#entityOut(e)) };
    },
    'crm.item.add': (p) => this.#itemAdd(p),
    'crm.item.update': (p) => this.#itemUpdate(p),
    'crm.item.get': (p) => ({ result: { item: this.#itemOut(this.#itemFind(p)) } }),
    'crm.item.list': (p) => this.#itemList(p),
    'crm.activity.update': (p) => {
      const activity = this.activities.get(Number(p.id ?? p.ID));
      if (!activity) throw new EmuError(400, '', 'Activity is not found');
      const fields = (p.fields ?? p.FIELDS) as Record<string, unknown> | undefined;
      if (!fields || typeof fields !== 'object' || Object.keys(fields).length === 0) {
        throw new EmuError(400, 'ERROR_CORE', 'The parameter fields is not defined or invalid'); // assumed wording
      }
      if ('SUBJECT' in fields && !fields.SUBJECT) throw new EmuError(400, '', 'The field SUBJECT is not defined or empty');
      Object.assign(activity.fields, fields);
      if (typeof fields.SUBJECT === 'string') activity.SUBJECT = fields.SUBJECT;
      return { result: true };
    },
    'tasks.task.add': (p) => this.#taskAdd(p),
    'tasks.task.update': (p) => {
      const task = this.#taskFind(p);
      Object.assign(task.fields, (p.fields ?? {}) as Record<string, unknown>);
      return { result: { task: taskOut(task) } };
    },
    'tasks.task.get': (p) => ({ result: { task: taskOut(this.#taskFind(p)) } }),
    'tasks.task.complete': (p) => {
      const task = this.#taskFind(p);
      if (task.status === 5) throw new EmuError(400, '0', 'Action on the task is not allowed');
      task.status = 5;
      return { result: { task: taskOut(task) } };
    },
    'im.notify.system.add': (p) => this.#imNotify('im.notify.system.add', p),
    'im.notify.personal.add': (p) => this.#imNotify('im.notify.personal.add', p),
    'im.notify': (p) => this.#imNotify('im.notify', p),
    // bizproc/bizproc-workflow/bizproc-workflow-start.md: DOCUMENT_ID is [module, class, id]; returns the workflow id.
    'bizproc.workflow.start': (p) => {
      const doc = toArray(p.DOCUMENT_ID) as unknown[];
      if (!Number(p.TEMPLATE_ID)) throw new EmuError(400, 'ERROR_WRONG_WORKFLOW_ID', 'Empty TEMPLATE_ID');
      if (doc.length !== 3 || doc[0] !== 'crm') throw new EmuError(400, 'ERROR_WRONG_DOCUMENT_ID', 'Wrong DOCUMENT_ID');
      return { result: `${Number(p.TEMPLATE_ID)}.${Math.random().toString(16).slice(2, 10)}` };
    },
    'telephony.externalcall.register': (p, ctx) => this.#register(p, ctx),
    'telephony.externalcall.show': (p) => this.#showHide(p, 'show'),
    'telephony.externalcall.hide': (p) => this.#showHide(p, 'hide'),
    'telephony.externalcall.finish': (p, ctx) => this.#finish(p, ctx),
    'telephony.externalcall.attachrecord': (p, ctx) => this.#attachRecord(p, ctx),
  };

  // ---- CRM items (crm/universal/crm-item-*.md) ----

  #typeId(p: Record<string, any>): number {
    const id = Number(p.entityTypeId ?? p.ENTITY_TYPE_ID);
    if (!Number.isInteger(id) || !Object.values(ENTITY_TYPE_IDS).includes(id)) throw new EmuError(400, 'NOT_FOUND', 'Smart process not found');
    return id;
  }

  #itemAdd(p: Record<string, any>): Reply {
    const typeId = this.#typeId(p);
    const fields = (p.fields ?? {}) as Record<string, unknown>;
    if (fields.fm !== undefined && !Array.isArray(fields.fm)) throw new EmuError(400, '100', 'Expected iterable value for multiple field, but got string instead');
    const id = this.#nextId++;
    const type = entityTypeName(typeId);
    if (type) {
      this.entities.push({ CRM_ENTITY_TYPE: type, CRM_ENTITY_ID: id, NAME: '', ASSIGNED_BY_ID: 0, PHONES: [], FIELDS: {} });
      this.#applyEntityFields(this.entities[this.entities.length - 1] as EmuEntity, fields);
    } else {
      this.items.push({ entityTypeId: typeId, id, fields: { ...fields } });
    }
    return { result: { item: this.#itemOut(type ? this.entities[this.entities.length - 1] as EmuEntity : this.items[this.items.length - 1] as EmuItem) } };
  }

  #itemUpdate(p: Record<string, any>): Reply {
    const found = this.#itemFind(p);
    const fields = (p.fields ?? {}) as Record<string, unknown>;
    if ('CRM_ENTITY_TYPE' in found) this.#applyEntityFields(found, fields);
    else Object.assign(found.fields, fields);
    return { result: { item: this.#itemOut(found) } };
  }

  /** fm phones, the responsible and the title/name are what the telephony methods read; the rest is kept in FIELDS. */
  #applyEntityFields(e: EmuEntity, fields: Record<string, unknown>): void {
    e.FIELDS ??= {};
    for (const [key, value] of Object.entries(fields)) {
      if (key === 'fm') {
        for (const m of toArray(value) as Array<Record<string, unknown>>) if (m.typeId === 'PHONE' && m.value) e.PHONES.push(String(m.value));
      } else if (key === 'assignedById') {
        e.ASSIGNED_BY_ID = Number(value);
      } else {
        e.FIELDS[key] = value;
      }
    }
    const f = e.FIELDS;
    e.NAME = String(e.CRM_ENTITY_TYPE === 'CONTACT' ? [f.name, f.lastName].filter(Boolean).join(' ') : f.title ?? '') || e.NAME ||
      `${e.CRM_ENTITY_TYPE === 'LEAD' ? 'Lead' : e.CRM_ENTITY_TYPE === 'CONTACT' ? 'Contact' : 'Company'} #${e.CRM_ENTITY_ID}`;
  }

  #itemFind(p: Record<string, any>): EmuEntity | EmuItem {
    const typeId = this.#typeId(p);
    const id = Number(p.id ?? p.ID);
    const type = entityTypeName(typeId);
    const found = type
      ? this.entities.find((e) => e.CRM_ENTITY_TYPE === type && e.CRM_ENTITY_ID === id)
      : this.items.find((i) => i.entityTypeId === typeId && i.id === id);
    if (!found) throw new EmuError(400, 'NOT_FOUND', 'Element not found'); // assumed wording
    return found;
  }

  #itemOut(x: EmuEntity | EmuItem): Record<string, unknown> {
    if (!('CRM_ENTITY_TYPE' in x)) return { id: x.id, entityTypeId: x.entityTypeId, ...x.fields };
    const fm = x.PHONES.map((value, i) => ({ id: i + 1, typeId: 'PHONE', valueType: 'WORK', value }));
    return {
      id: x.CRM_ENTITY_ID, entityTypeId: ENTITY_TYPE_IDS[x.CRM_ENTITY_TYPE], assignedById: x.ASSIGNED_BY_ID,
      ...(x.CRM_ENTITY_TYPE === 'CONTACT' ? {} : { title: x.NAME }), ...x.FIELDS, fm,
    };
  }

  #itemList(p: Record<string, any>): Reply {
    const typeId = this.#typeId(p);
    const type = entityTypeName(typeId);
    const all = (type ? this.entities.filter((e) => e.CRM_ENTITY_TYPE === type) : this.items.filter((i) => i.entityTypeId === typeId))
      .map((x) => this.#itemOut(x));
    const filter = (p.filter ?? {}) as Record<string, unknown>;
    const matching = all.filter((item) => Object.entries(filter).every(([key, want]) => {
      const m = /^(@|!@|!=|!|=)?(.+)$/.exec(key) as RegExpExecArray;
      if (/^[<>%]/.test(key)) throw new EmuError(400, 'INVALID_ARG_VALUE', `Invalid filter: field '${key}' is not allowed in filter`); // not emulated
      const have = item[m[2] as string];
      const wants = toArray(want).map(String);
      switch (m[1]) {
        case '@': return wants.includes(String(have));
        case '!@': return !wants.includes(String(have));
        case '!': case '!=': return String(have ?? '') !== String(want);
        default: return String(have ?? '') === String(want);
      }
    }));
    const select = toArray(p.select).map(String);
    const start = Math.max(0, Number(p.start ?? 0) || 0);
    const page = matching.slice(start, start + PAGE).map((item) =>
      select.length === 0 || select.includes('*') ? item : Object.fromEntries(select.filter((k) => k in item).map((k) => [k, item[k]])));
    const reply: Reply = { result: { items: page }, total: matching.length };
    if (start + PAGE < matching.length) reply.next = start + PAGE;
    return reply;
  }

  // ---- tasks (tasks/tasks-task-*.md) ----

  #taskAdd(p: Record<string, any>): Reply {
    const fields = p.fields as Record<string, any> | undefined;
    if (!fields || typeof fields !== 'object' || Object.keys(fields).length === 0) {
      throw new EmuError(400, '100', 'Could not find value for parameter {fields}');
    }
    if (!fields.TITLE) throw new EmuError(400, 'ERROR_CORE', 'Task title not specified<br>');
    if (fields.RESPONSIBLE_ID === undefined || fields.RESPONSIBLE_ID === '') throw new EmuError(400, 'ERROR_CORE', 'Assignee not specified<br>');
    if (!this.users.some((u) => u.ID === Number(fields.RESPONSIBLE_ID))) {
      throw new EmuError(400, 'ERROR_CORE', 'User specified in the "Assignee" field not found<br>');
    }
    const task: EmuTask = { id: this.#nextId++, fields: { ...fields }, status: 2 };
    this.tasks.push(task);
    return { result: { task: taskOut(task) } };
  }

  #taskFind(p: Record<string, any>): EmuTask {
    const raw = p.taskId ?? p.TASKID ?? p.id;
    if (!/^\d+$/.test(String(raw ?? ''))) throw new EmuError(400, '0', 'wrong task id');
    const task = this.tasks.find((t) => t.id === Number(raw));
    if (!task) throw new EmuError(400, '0', 'Action on the task is not allowed');
    return task;
  }

  // ---- notifications (chats/notifications/im-notify*.md) ----

  /** Assumed: webhooks may call it (the docs say "application only" but tell webhooks how to pass TAG). */
  #imNotify(method: string, p: Record<string, any>): Reply {
    const userId = Number(p.USER_ID ?? 0);
    if (!(userId > 0)) throw new EmuError(400, 'USER_ID_EMPTY', "User ID can't be empty");
    const message = String(p.MESSAGE ?? '').trim();
    if (!message) throw new EmuError(400, 'MESSAGE_EMPTY', "Message can't be empty");
    this.notifications.push({ method, userId, message, at: this.now() });
    return { result: this.#nextId++ };
  }

  #requireApp(ctx: Ctx): void {
    if (ctx.mode !== 'oauth') throw new EmuError(403, 'WRONG_AUTH_TYPE', 'Current authorization type is denied for this method');
  }

  #userGet(p: Record<string, any>): Reply {
    const filter = (p.FILTER ?? p.filter ?? {}) as Record<string, unknown>;
    let list = [...this.users].sort((a, b) => a.ID - b.ID);
    for (const [rawKey, value] of Object.entries(filter)) {
      const key = rawKey.toUpperCase();
      if (key === 'ACTIVE') {
        const want = truthy(value);
        list = list.filter((u) => u.ACTIVE === want);
      } else if (key === 'USER_TYPE') {
        list = list.filter((u) => (u.USER_TYPE ?? 'employee') === String(value));
      } else if (key === 'UF_PHONE_INNER') {
        list = list.filter((u) => (u.UF_PHONE_INNER ?? '') === String(value));
      } else if (key === 'ID' || key === '@ID') {
        const ids = toArray(value).map(Number);
        list = list.filter((u) => ids.includes(u.ID));
      }
    }
    const start = Math.max(0, Number(p.start ?? p.START ?? 0) || 0);
    const page = list.slice(start, start + PAGE).map((u) => ({
      ID: String(u.ID), ACTIVE: u.ACTIVE, NAME: u.NAME, LAST_NAME: u.LAST_NAME, USER_TYPE: u.USER_TYPE ?? 'employee',
      UF_PHONE_INNER: u.UF_PHONE_INNER ?? null, UF_DEPARTMENT: [1],
    }));
    const reply: Reply = { result: page, total: list.length };
    if (start + PAGE < list.length) reply.next = start + PAGE;
    return reply;
  }

  #findUser(p: Record<string, any>): EmuUser {
    const user = p.USER_ID !== undefined && p.USER_ID !== ''
      ? this.users.find((u) => u.ID === Number(p.USER_ID))
      : this.users.find((u) => u.UF_PHONE_INNER !== undefined && u.UF_PHONE_INNER === String(p.USER_PHONE_INNER));
    if (!user || !user.ACTIVE) throw new EmuError(400, 'ERROR_CORE', 'User is not found or is not active');
    return user;
  }

  #register(p: Record<string, any>, ctx: Ctx): Reply {
    if (this.appContextOnly && ctx.mode !== 'oauth') this.#requireApp(ctx);
    if ((p.USER_ID === undefined || p.USER_ID === '') && (p.USER_PHONE_INNER === undefined || p.USER_PHONE_INNER === '')) {
      throw new EmuError(400, 'ERROR_CORE', 'USER_ID or USER_PHONE_INNER should be set');
    }
    const type = Number(p.TYPE);
    if (!Number.isInteger(type) || type < 1 || type > 5) throw new EmuError(400, 'ERROR_CORE', 'Unknown TYPE');
    let startDate: string;
    if (p.CALL_START_DATE === undefined || p.CALL_START_DATE === '') {
      startDate = isoWithZone(this.now());
    } else {
      startDate = String(p.CALL_START_DATE);
      if (!ISO_WITH_ZONE.test(startDate) || Number.isNaN(Date.parse(startDate))) {
        throw new EmuError(400, 'ERROR_CORE', 'CALL_START_DATE should be in the ISO-8601 format');
      }
    }
    const phone = String(p.PHONE_NUMBER ?? '');
    if (!/\d/.test(phone) || !/^[+\d\s\-().]+$/.test(phone)) throw new EmuError(400, 'ERROR_CORE', 'Unsupported phone number format');
    const user = this.#findUser(p);
    const lineNumber = p.LINE_NUMBER === undefined || p.LINE_NUMBER === '' ? undefined : String(p.LINE_NUMBER);
    const externalCallId = p.EXTERNAL_CALL_ID === undefined || p.EXTERNAL_CALL_ID === '' ? undefined : String(p.EXTERNAL_CALL_ID);

    // Re-registration within 30 minutes with the same technical keys returns the existing CALL_ID (register docs).
    const now = this.now();
    for (const call of this.calls.values()) {
      if (call.appKey === ctx.appKey && call.phoneNumber === phone && call.type === type && call.userId === user.ID &&
          call.lineNumber === lineNumber && call.externalCallId === externalCallId && now - call.registeredAt < THIRTY_MINUTES) {
        return { result: this.#registerResult(call, []) };
      }
    }

    let entityType: EmuEntity['CRM_ENTITY_TYPE'] | null = null;
    let entityId: number | null = null;
    let createdLead: number | null = null;
    const created: Array<{ ENTITY_TYPE: string; ENTITY_ID: number }> = [];
    if (p.CRM_ENTITY_TYPE && p.CRM_ENTITY_ID) {
      entityType = String(p.CRM_ENTITY_TYPE).toUpperCase() as EmuEntity['CRM_ENTITY_TYPE'];
      entityId = Number(p.CRM_ENTITY_ID);
    } else {
      const found = this.entities.find((e) => e.PHONES.some((ph) => samePhone(ph, phone)));
      if (found) {
        entityType = found.CRM_ENTITY_TYPE;
        entityId = found.CRM_ENTITY_ID;
      } else if (truthy(p.CRM_CREATE)) {
        createdLead = this.#nextId++;
        this.entities.push({ CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: createdLead, NAME: `Lead ${phone}`, ASSIGNED_BY_ID: user.ID, PHONES: [phone] });
        created.push({ ENTITY_TYPE: 'LEAD', ENTITY_ID: createdLead });
        entityType = 'LEAD';
        entityId = createdLead;
      }
    }
    const callId = `externalCall.${createHash('md5').update(randomBytes(16)).digest('hex')}.${Math.floor(now / 1000)}`;
    const call: EmuCall = {
      callId, appKey: ctx.appKey, userId: user.ID, phoneNumber: phone, type, callStartDate: startDate, registeredAt: now,
      crmEntityType: entityType, crmEntityId: entityId, crmCreatedLead: createdLead,
      shownTo: p.SHOW === undefined || truthy(p.SHOW) ? [user.ID] : [], hiddenFrom: [], records: [],
      ...(lineNumber !== undefined ? { lineNumber } : {}), ...(externalCallId !== undefined ? { externalCallId } : {}),
    };
    this.calls.set(callId, call);
    return { result: this.#registerResult(call, created) };
  }

  #registerResult(call: EmuCall, created: Array<{ ENTITY_TYPE: string; ENTITY_ID: number }>): Record<string, unknown> {
    return {
      CALL_ID: call.callId, CRM_CREATED_LEAD: created.length ? call.crmCreatedLead : null, CRM_CREATED_ENTITIES: created,
      CRM_ENTITY_TYPE: call.crmEntityType, CRM_ENTITY_ID: call.crmEntityId,
    };
  }

  #showHide(p: Record<string, any>, which: 'show' | 'hide'): Reply {
    const call = this.calls.get(String(p.CALL_ID ?? ''));
    if (!call || call.finished) return { result: false };
    const ids = p.USER_ID === undefined || p.USER_ID === '' ? [call.userId] : toArray(p.USER_ID).map(Number);
    const list = which === 'show' ? call.shownTo : call.hiddenFrom;
    for (const id of ids) if (!list.includes(id)) list.push(id);
    return { result: true };
  }

  #finish(p: Record<string, any>, ctx: Ctx): Reply {
    if (this.appContextOnly && ctx.mode !== 'oauth') this.#requireApp(ctx);
    if (typeof p.CALL_ID !== 'string') throw new EmuError(400, 'INVALID_ARGUMENT', 'CALL_ID must be a string');
    if ((p.USER_ID === undefined || p.USER_ID === '') && (p.USER_PHONE_INNER === undefined || p.USER_PHONE_INNER === '')) {
      throw new EmuError(400, 'ERROR_CORE', 'USER_ID or USER_PHONE_INNER should be set');
    }
    const call = this.calls.get(p.CALL_ID);
    // A finished call leaves the active-call table: a second finish finds nothing (Itgrix's report, b24-rest-docs #175).
    if (!call || call.finished) throw new EmuError(400, 'ERROR_CORE', 'Call is not found (call should be registered prior to finishing)');
    const user = this.#findUser(p);
    const duration = Math.max(0, Number(p.DURATION ?? 0) || 0);
    const statusCode = p.STATUS_CODE !== undefined && p.STATUS_CODE !== '' ? String(p.STATUS_CODE) : duration > 0 ? '200' : '304';
    const activityId = call.crmEntityId !== null ? this.#nextId++ : null;
    if (activityId !== null) {
      this.activities.set(activityId, {
        ID: activityId, OWNER_TYPE_ID: ENTITY_TYPE_IDS[call.crmEntityType ?? 'LEAD'] ?? 1, OWNER_ID: call.crmEntityId as number,
        TYPE_ID: 2, PROVIDER_ID: 'VOXIMPLANT_CALL', SUBJECT: `${call.type === 2 ? 'Incoming' : 'Outgoing'} call ${call.phoneNumber}`, fields: {},
      });
    }
    const vote = p.VOTE !== undefined && p.VOTE !== '' ? Number(p.VOTE) : null;
    call.finished = { userId: user.ID, duration, statusCode, failedReason: String(p.FAILED_REASON ?? ''), vote, activityId, at: this.now() };
    return {
      result: {
        CALL_ID: call.callId, EXTERNAL_CALL_ID: call.externalCallId ?? null, PORTAL_USER_ID: user.ID, PHONE_NUMBER: call.phoneNumber,
        PORTAL_NUMBER: call.lineNumber ?? '', INCOMING: String(call.type), CALL_DURATION: duration, CALL_START_DATE: call.callStartDate,
        CALL_STATUS: statusCode === '200' ? 1 : 0, CALL_VOTE: vote ?? 0, COST: Number(p.COST ?? 0) || 0, COST_CURRENCY: String(p.COST_CURRENCY ?? ''),
        CALL_FAILED_CODE: statusCode, CALL_FAILED_REASON: String(p.FAILED_REASON ?? ''), REST_APP_ID: '1', REST_APP_NAME: 'asterisk-bitrix24',
        CRM_ACTIVITY_ID: activityId, COMMENT: null, CRM_ENTITY_TYPE: call.crmEntityType, CRM_ENTITY_ID: call.crmEntityId, ID: this.#nextId++,
      },
    };
  }

  #attachRecord(p: Record<string, any>, ctx: Ctx): Reply {
    const recordUrl = p.RECORD_URL === undefined || p.RECORD_URL === '' ? undefined : String(p.RECORD_URL);
    if (recordUrl === undefined && p.FILENAME === undefined) {
      throw new EmuError(400, '', 'Required parameters are not set. Request should contain either URL or FILENAME parameter');
    }
    const call = this.calls.get(String(p.CALL_ID ?? ''));
    if (!call || !call.finished) throw new EmuError(400, '', 'Call is not found in the statistic table. It looks like it is not finished yet.');
    const filename = p.FILENAME !== undefined ? String(p.FILENAME) : decodeURIComponent(new URL(recordUrl as string).pathname.split('/').pop() ?? '');
    if (!filename) throw new EmuError(400, 'ERROR_CORE', 'File name is empty');
    if (!/\.(mp3|wav)$/i.test(filename)) throw new EmuError(400, 'ERROR_CORE', 'Wrong file extension. Only wav and mp3 are allowed');
    if (recordUrl !== undefined) {
      if (isPrivateHost(new URL(recordUrl).hostname)) {
        throw new EmuError(400, '', 'Record URL resolves to a non-public address and was blocked.');
      }
      return { result: { FILE_ID: this.#attach(call, { filename, via: 'url', url: recordUrl }) } };
    }
    if (p.FILE_CONTENT !== undefined) {
      const content = String(p.FILE_CONTENT).replace(/\s+/g, '');
      if (!content) throw new EmuError(400, 'ERROR_CORE', 'File content is empty.');
      if (content.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(content)) {
        throw new EmuError(400, 'ERROR_CORE', 'File content is not properly encoded. Base64 encoding is expected.');
      }
      return { result: { FILE_ID: this.#attach(call, { filename, via: 'content', content: Buffer.from(content, 'base64') }) } };
    }
    const token = `telephony|${Buffer.from(`callId=${call.callId}&_=${randomBytes(8).toString('hex')}`).toString('base64')}`;
    this.#uploads.set(token, { callId: call.callId, filename });
    const query = new URLSearchParams(ctx.uploadAuth ? { auth: ctx.uploadAuth, token } : { token });
    return { result: { uploadUrl: `${ctx.uploadBase}?${query.toString()}`, fieldName: 'file' } };
  }

  #attach(call: EmuCall, record: Omit<EmuRecord, 'fileId'>): number {
    const full: EmuRecord = { ...record, fileId: this.#nextId++ };
    call.record = full;
    call.records.push(full);
    return full.fileId;
  }

  async #upload(query: Record<string, any>, raw: Buffer, contentType: string, res: http.ServerResponse): Promise<void> {
    const entry: LoggedRequest = { method: 'upload', params: { token: query.token }, at: this.now(), httpStatus: 0 };
    const pending = this.#uploads.get(String(query.token ?? ''));
    // Assumed: the docs do not show the upload endpoint's replies; errors use the REST envelope.
    if (!pending) return this.#fail(res, entry, new EmuError(400, 'ERROR_CORE', 'Upload token is invalid or was used'));
    let file: unknown;
    try {
      file = (await new Response(new Uint8Array(raw), { headers: { 'content-type': contentType } }).formData()).get('file');
    } catch {
      file = null;
    }
    if (!(file instanceof Blob)) return this.#fail(res, entry, new EmuError(400, 'ERROR_CORE', 'File is not found in the request'));
    this.#uploads.delete(String(query.token));
    const call = this.calls.get(pending.callId) as EmuCall;
    const content = Buffer.from(await file.arrayBuffer());
    entry.params = { token: query.token, filename: pending.filename, size: content.length };
    const fileId = this.#attach(call, { filename: pending.filename, via: 'upload', content });
    entry.httpStatus = 200;
    this.#log(entry);
    this.#json(res, 200, envelope({ result: { FILE_ID: fileId } }, this.now()));
  }

  #entityOut(e: EmuEntity): Record<string, unknown> {
    const user = this.users.find((u) => u.ID === e.ASSIGNED_BY_ID);
    return {
      CRM_ENTITY_TYPE: e.CRM_ENTITY_TYPE, CRM_ENTITY_ID: e.CRM_ENTITY_ID, ASSIGNED_BY_ID: e.ASSIGNED_BY_ID, NAME: e.NAME,
      ASSIGNED_BY: { ID: String(e.ASSIGNED_BY_ID), TIMEMAN_STATUS: 'OPENED', USER_PHONE_INNER: user?.UF_PHONE_INNER ?? null,
        WORK_PHONE: null, PERSONAL_PHONE: null, PERSONAL_MOBILE: null },
    };
  }
}

// ---- helpers ----

const ENTITY_TYPE_IDS: Readonly<Record<string, number>> = { LEAD: 1, DEAL: 2, CONTACT: 3, COMPANY: 4 };

function entityTypeName(typeId: number): EmuEntity['CRM_ENTITY_TYPE'] | undefined {
  return typeId === 1 ? 'LEAD' : typeId === 3 ? 'CONTACT' : typeId === 4 ? 'COMPANY' : undefined;
}

/** tasks.task.* reply shape (strings, as Bitrix24 returns them). */
function taskOut(t: EmuTask): Record<string, unknown> {
  const f = t.fields;
  return {
    id: String(t.id), title: String(f.TITLE ?? ''), description: String(f.DESCRIPTION ?? ''), status: String(t.status),
    responsibleId: String(f.RESPONSIBLE_ID ?? ''), createdBy: String(f.CREATED_BY ?? f.RESPONSIBLE_ID ?? ''),
    deadline: f.DEADLINE ?? null, ufCrmTask: toArray(f.UF_CRM_TASK).map(String),
  };
}

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

/** The reply of a fault that answers (network/hang faults never reach here). */
function faultError(fault: EmuFault): EmuError {
  if (typeof fault === 'object') return new EmuError(fault.status, fault.error, fault.description);
  switch (fault) {
    case '500': return new EmuError(500, 'INTERNAL_SERVER_ERROR', 'Internal server error');
    case 'QUERY_LIMIT_EXCEEDED': return new EmuError(503, 'QUERY_LIMIT_EXCEEDED', 'Too many requests');
    case 'OPERATION_TIME_LIMIT': return new EmuError(429, 'OPERATION_TIME_LIMIT', 'Method is blocked due to operation time limit');
    default: return new EmuError(401, 'expired_token', 'The access token provided has expired.');
  }
}

function timeBlock(nowMs: number): Record<string, unknown> {
  const s = nowMs / 1000;
  return {
    start: s, finish: s + 0.01, duration: 0.01, processing: 0.005, date_start: isoWithZone(nowMs), date_finish: isoWithZone(nowMs),
    operating_reset_at: Math.floor(s) + 600, operating: 0,
  };
}

function envelope(reply: Reply, nowMs: number): Record<string, unknown> {
  const out: Record<string, unknown> = { result: reply.result };
  if (reply.next !== undefined) out.next = reply.next;
  if (reply.total !== undefined) out.total = reply.total;
  out.time = timeBlock(nowMs);
  return out;
}

function isoWithZone(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
}

function truthy(v: unknown): boolean {
  return v === true || v === 1 || ['1', 'true', 'y', 'yes'].includes(String(v).toLowerCase());
}

function toArray(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (v && typeof v === 'object') return Object.values(v);
  return v === undefined || v === null || v === '' ? [] : [v];
}

function samePhone(a: string, b: string): boolean {
  const da = a.replace(/\D/g, '').slice(-10);
  const db = b.replace(/\D/g, '').slice(-10);
  return da.length > 0 && da === db;
}

function isPrivateHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^(127\.|10\.|192\.168\.|169\.254\.|172\.(1[6-9]|2\d|3[01])\.)/.test(h) || /^f[cd]/i.test(h);
}

function batchMethods(cmd: unknown): string[] {
  if (!cmd || typeof cmd !== 'object') return [];
  return Object.values(cmd).map((c) => String(c).split('?')[0]?.trim() ?? '');
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseBody(raw: Buffer, contentType: string): Record<string, any> {
  if (raw.length === 0) return {};
  const text = raw.toString('utf8');
  if (contentType.includes('application/json')) {
    const parsed = JSON.parse(text) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, any>) : {};
  }
  if (contentType.includes('multipart/')) return {};
  return parsePhpQuery(text);
}

/** PHP's parse_str: `a[b][]=1&a[b][]=2&c=x` → `{ a: { b: ['1', '2'] }, c: 'x' }` (0..n-1 keys become lists). */
export function parsePhpQuery(qs: string): Record<string, any> {
  const root: Record<string, any> = {};
  for (const pair of qs.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const decode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
    const key = decode(eq < 0 ? pair : pair.slice(0, eq));
    const value = decode(eq < 0 ? '' : pair.slice(eq + 1));
    const m = /^([^[]+)((?:\[[^\]]*\])*)$/.exec(key);
    if (!m) continue;
    const path = [m[1] as string, ...[...(m[2] ?? '').matchAll(/\[([^\]]*)\]/g)].map((x) => x[1] as string)];
    let node: Record<string, any> = root;
    for (let i = 0; i < path.length; i++) {
      let seg = path[i] as string;
      if (seg === '') seg = String(Object.keys(node).filter((k) => /^\d+$/.test(k)).length);
      if (i === path.length - 1) {
        node[seg] = value;
      } else {
        if (typeof node[seg] !== 'object' || node[seg] === null) node[seg] = {};
        node = node[seg] as Record<string, any>;
      }
    }
  }
  return listify(root) as Record<string, any>;
}

function listify(v: unknown): unknown {
  if (!v || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  const isList = keys.length > 0 && keys.every((k, i) => k === String(i));
  if (isList) return keys.map((k) => listify(o[k]));
  return Object.fromEntries(keys.map((k) => [k, listify(o[k])]));
}

/** CRestUtil::processBatchElement: `$result[key][FIELD]` in keys and values is replaced by earlier results. */
function substitute(v: unknown, state: Record<string, unknown>): unknown {
  if (Array.isArray(v)) return v.map((x) => substitute(x, state));
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [substituteString(k, state) as string, substitute(x, state)]));
  }
  return typeof v === 'string' ? substituteString(v, state) : v;
}

function substituteString(s: string, state: Record<string, unknown>): unknown {
  const re = /\$(result_error|result_total|result_next|result_time|result)((?:\[[^\]]+\])+)/g;
  let whole: unknown = undefined;
  const replaced = s.replace(re, (match, root: string, path: string) => {
    let r: unknown = state[root];
    for (const seg of [...path.matchAll(/\[([^\]]+)\]/g)].map((x) => x[1] as string)) {
      if (r && typeof r === 'object' && seg in (r as Record<string, unknown>)) r = (r as Record<string, unknown>)[seg];
      else break; // like PHP: an unresolvable path leaves the partial value
    }
    if (match === s) whole = r;
    return typeof r === 'object' ? JSON.stringify(r) : String(r);
  });
  return whole !== undefined ? whole : replaced;
}
