/**
 * The daemon's error catalogue. Every error a PBX admin can meet in a log line carries a stable code from
 * this list; README.md's error table documents each one (a test keeps the two in step). Codes are never reused.
 */
export const ERROR_CODES = {
  E_CONFIG: 'The configuration file is missing, is not valid YAML, or breaks the schema (file:line:key given).',
  E_AMI_CONNECT: 'The AMI TCP connection failed or dropped; the daemon reconnects with capped backoff.',
  E_AMI_AUTH: 'Asterisk refused the AMI login (ami.username / ami.secret, or manager.conf permit/deny).',
  E_AMI_TIMEOUT: 'An AMI action got no answer in time (or the keepalive Ping did not): the connection is dropped and re-made.',
  E_AMI_PROTOCOL: 'Asterisk sent a frame that is not AMI; it is skipped and logged.',
  E_AMI_ACTION: 'An AMI action was refused (Response: Error) or had an unsafe value (CR/LF).',
  E_BITRIX_RETRYABLE: 'Bitrix24 is unreachable, overloaded (5xx, QUERY_LIMIT_EXCEEDED, OPERATION_TIME_LIMIT): retried with backoff.',
  E_BITRIX_AUTH: 'Bitrix24 refused the credentials (webhook URL, OAuth tokens, scopes).',
  E_BITRIX_PERMANENT: 'Bitrix24 rejected a request for good; it went to the dead-letter table.',
  E_HOOK: 'A customization script failed (timeout, crash, bad output): the call went on with unmodified params.',
  E_STORE: 'The SQLite state database could not be opened or written.',
  E_WEBHOOK: 'An HTTP request to the daemon was rejected (bad token, malformed body).',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class DaemonError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'DaemonError';
  }
}
