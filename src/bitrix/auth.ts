import type { BitrixError } from './errors.ts';

/** Where and how to send a REST call: `baseUrl + method + '.json'`, with `authParams` merged into the body. */
export interface AuthEndpoint {
  /** Ends with '/': `https://portal/rest/1/<secret>/` (webhook) or `https://portal/rest/` (OAuth client_endpoint). */
  baseUrl: string;
  /**
   * Credentials that travel in the request body (`auth=<access token>` for OAuth), never in the URL, so that
   * proxies and access logs do not record them.
   */
  authParams?: Record<string, string>;
}

/** The two ways of talking to Bitrix24 (incoming webhook, local OAuth app) behind one interface. */
export interface BitrixAuth {
  endpoint(): Promise<AuthEndpoint>;
  /**
   * Called once when a request failed with an 'auth' error. Resolves true when the request should be retried
   * (the OAuth token was refreshed, or another caller already refreshed it since `used` was handed out).
   */
  onAuthError(err: BitrixError, used: AuthEndpoint): Promise<boolean>;
}
