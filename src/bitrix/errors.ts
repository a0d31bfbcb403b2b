import { DaemonError } from '../errors.ts';
import { redact } from '../log/redact.ts';

/**
 * How a failed Bitrix24 request should be treated. `retryable` is what the outbox looks at; `kind` says why,
 * so that the limiter can back off globally (rate-limit) or per method (operating-limit).
 */
export type BitrixErrorKind = 'network' | 'server' | 'rate-limit' | 'operating-limit' | 'auth' | 'permanent';

export interface BitrixErrorInfo {
  /** The REST method (or 'oauth/token', 'upload') that failed. */
  method: string;
  httpStatus?: number;
  /** Bitrix24's `error` field; '' for the few method errors Bitrix24 sends without a code. */
  bitrixCode?: string;
  /** Bitrix24's `error_description`. */
  description?: string;
  kind: BitrixErrorKind;
  retryable: boolean;
  /** How long to wait before the next attempt, when Bitrix24 told us (or its limits imply it). */
  retryAfterMs?: number;
}

export class BitrixError extends DaemonError {
  readonly method: string;
  readonly httpStatus?: number;
  readonly bitrixCode?: string;
  readonly description?: string;
  readonly kind: BitrixErrorKind;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;

  constructor(info: BitrixErrorInfo, message: string, options?: { cause?: unknown }) {
    const code = info.retryable ? 'E_BITRIX_RETRYABLE' : info.kind === 'auth' ? 'E_BITRIX_AUTH' : 'E_BITRIX_PERMANENT';
    // Messages may quote URLs or Bitrix24 text that echoes parameters: never let a token through.
    super(code, redact(message), options);
    this.name = 'BitrixError';
    this.method = info.method;
    if (info.httpStatus !== undefined) this.httpStatus = info.httpStatus;
    if (info.bitrixCode !== undefined) this.bitrixCode = info.bitrixCode;
    if (info.description !== undefined) this.description = redact(info.description);
    this.kind = info.kind;
    this.retryable = info.retryable;
    if (info.retryAfterMs !== undefined) this.retryAfterMs = info.retryAfterMs;
  }
}

/** Bitrix24 drains its request counter at 2/s (standard plans): one second frees two slots. */
const QUERY_LIMIT_BACKOFF_MS = 1_000;
/** Without `operating_reset_at` we wait one of the ten 1-minute accounting buckets. */
const OPERATION_LIMIT_BACKOFF_MS = 60_000;
/** OVERLOAD_LIMIT is a manual block by Bitrix24 support: retry, but rarely. */
const OVERLOAD_BACKOFF_MS = 5 * 60_000;

/** Codes that mean "these credentials or this app may not do that" (system-errors.md, oauth/error-codes.md). */
const AUTH_CODES = new Set([
  'NO_AUTH_FOUND', 'INVALID_CREDENTIALS', 'expired_token', 'invalid_token', 'insufficient_scope', 'invalid_scope',
  'ACCESS_DENIED', 'WRONG_AUTH_TYPE', 'user_access_error', 'invalid_grant', 'invalid_client', 'PAYMENT_REQUIRED',
  'INVALID_REQUEST', 'PORTAL_DELETED',
]);

/** System errors that mean "try again" whatever HTTP status carried them (system-errors.md). */
const SERVER_CODES = new Set(['INTERNAL_SERVER_ERROR', 'ERROR_UNEXPECTED_ANSWER']);

export interface ClassifyInput {
  method: string;
  httpStatus?: number;
  /** The `error` field of Bitrix24's body. */
  error?: string;
  errorDescription?: string;
  /** `time.operating_reset_at` (unix seconds) if the body carried one. */
  operatingResetAt?: number;
  /** An HTTP Retry-After header, in seconds. */
  retryAfterSec?: number;
  /** A transport error code (ECONNREFUSED, ECONNABORTED for timeouts, ...). */
  networkCode?: string;
  now?: number;
  cause?: unknown;
}

/**
 * Turns whatever came back (or did not) into a BitrixError: network failures, 5xx and the two rate limits are
 * retryable; credential problems are 'auth'; everything else (ERROR_CORE, NOT_FOUND, 4xx) is permanent.
 */
export function classifyBitrixError(input: ClassifyInput): BitrixError {
  const { method, httpStatus, error, networkCode } = input;
  const description = input.errorDescription ?? '';
  const now = input.now ?? Date.now();
  const base = { method, httpStatus, bitrixCode: error, description: input.errorDescription };

  if (networkCode !== undefined && error === undefined) {
    const what = networkCode === 'ECONNABORTED' || networkCode === 'ETIMEDOUT' ? 'timed out' : 'unreachable';
    return new BitrixError(
      { method, kind: 'network', retryable: true },
      `Bitrix24 ${method}: ${what} (${networkCode})`,
      { cause: input.cause },
    );
  }

  const text = `${error || (httpStatus !== undefined ? `HTTP ${httpStatus}` : 'error')}${description ? `: ${description}` : ''}`;
  const status = httpStatus !== undefined ? ` (HTTP ${httpStatus})` : '';

  if (error === 'QUERY_LIMIT_EXCEEDED') {
    const retryAfterMs = input.retryAfterSec !== undefined ? input.retryAfterSec * 1000 : QUERY_LIMIT_BACKOFF_MS;
    return new BitrixError({ ...base, kind: 'rate-limit', retryable: true, retryAfterMs },
      `Bitrix24 ${method}: request rate limit hit, ${text}${status}`);
  }
  if (error === 'OPERATION_TIME_LIMIT') {
    const resetMs = input.operatingResetAt !== undefined ? input.operatingResetAt * 1000 - now : undefined;
    const retryAfterMs = resetMs !== undefined && resetMs > 0 ? resetMs : OPERATION_LIMIT_BACKOFF_MS;
    return new BitrixError({ ...base, kind: 'operating-limit', retryable: true, retryAfterMs },
      `Bitrix24 ${method}: method blocked by the operating time limit, ${text}${status}`);
  }
  if (error === 'OVERLOAD_LIMIT') {
    return new BitrixError({ ...base, kind: 'rate-limit', retryable: true, retryAfterMs: OVERLOAD_BACKOFF_MS },
      `Bitrix24 ${method}: REST API blocked for overload (ask Bitrix24 support to lift it), ${text}${status}`);
  }
  if (error !== undefined && AUTH_CODES.has(error)) {
    return new BitrixError({ ...base, kind: 'auth', retryable: false }, `Bitrix24 ${method}: ${text}${status}`);
  }
  if ((httpStatus !== undefined && httpStatus >= 500) || (error !== undefined && SERVER_CODES.has(error))) {
    const retryAfterMs = input.retryAfterSec !== undefined ? input.retryAfterSec * 1000 : undefined;
    return new BitrixError({ ...base, kind: 'server', retryable: true, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) },
      `Bitrix24 ${method}: server error, ${text}${status}`);
  }
  if (httpStatus === 429) {
    return new BitrixError({ ...base, kind: 'rate-limit', retryable: true, retryAfterMs: QUERY_LIMIT_BACKOFF_MS },
      `Bitrix24 ${method}: ${text}${status}`);
  }
  return new BitrixError({ ...base, kind: 'permanent', retryable: false }, `Bitrix24 ${method}: ${text}${status}`);
}
