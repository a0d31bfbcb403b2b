import { registerSecret } from '../log/redact.ts';
import type { Logger } from '../log/logger.ts';
import type { AuthEndpoint, BitrixAuth } from './auth.ts';
import { BitrixError } from './errors.ts';
import { requestTokens, type OAuthAppCredentials } from './oauth-token.ts';
import type { Tokens, TokenStore } from './token-store.ts';

export interface OAuthAuthOptions extends OAuthAppCredentials {
  store: TokenStore;
  /** Refresh this long before `expiresAt` (default 60 s) so that calls do not start with a dying token. */
  refreshMarginMs?: number;
  now?: () => number;
  timeoutMs?: number;
  logger?: Logger;
}

/** Token errors a refresh can fix (an access token that expired, or was replaced by a re-install). */
const REFRESHABLE = new Set(['expired_token', 'invalid_token']);

/**
 * Local OAuth app: calls go to `clientEndpoint + method` with `auth=<access token>`. The access token is
 * refreshed shortly before it expires and once when Bitrix24 says `expired_token`; concurrent callers share one
 * in-flight refresh. A refused refresh (`invalid_grant`) is permanent and sticky: every call fails fast with
 * E_BITRIX_AUTH until new tokens arrive through {@link OAuthAuth.setTokens} (install handler, CLI `auth`).
 */
export class OAuthAuth implements BitrixAuth {
  readonly #opts: OAuthAuthOptions;
  readonly #now: () => number;
  readonly #margin: number;
  #tokens: Tokens | undefined;
  #loaded = false;
  #refreshing: Promise<Tokens> | undefined;
  #fatal: BitrixError | undefined;

  constructor(options: OAuthAuthOptions) {
    this.#opts = options;
    this.#now = options.now ?? Date.now;
    this.#margin = options.refreshMarginMs ?? 60_000;
    registerSecret(options.clientSecret);
  }

  async endpoint(): Promise<AuthEndpoint> {
    let tokens = await this.#current();
    if (tokens.expiresAt - this.#now() <= this.#margin) tokens = await this.refresh();
    return { baseUrl: tokens.clientEndpoint, authParams: { auth: tokens.accessToken } };
  }

  async onAuthError(err: BitrixError, used: AuthEndpoint): Promise<boolean> {
    if (!err.bitrixCode || !REFRESHABLE.has(err.bitrixCode)) return false;
    const current = await this.#current();
    // Someone refreshed while this request was in flight: just retry with the new token.
    if (used.authParams?.auth !== current.accessToken) return true;
    this.#opts.logger?.info(`Bitrix24 said ${err.bitrixCode}: refreshing the OAuth access token`);
    await this.refresh();
    return true;
  }

  /** Refreshes now (joining a refresh already in flight) and persists the new pair. */
  refresh(): Promise<Tokens> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    this.#refreshing ??= this.#doRefresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /** New tokens from the install handler or the CLI: stored, and any earlier permanent failure is forgotten. */
  async setTokens(tokens: Tokens): Promise<void> {
    registerSecret(tokens.accessToken, tokens.refreshToken, tokens.applicationToken);
    await this.#opts.store.save(tokens);
    this.#tokens = { ...tokens };
    this.#loaded = true;
    this.#fatal = undefined;
  }

  /** The stored tokens (undefined before install), for status output; do not log them. */
  async tokens(): Promise<Tokens | undefined> {
    await this.#load();
    return this.#tokens ? { ...this.#tokens } : undefined;
  }

  async #load(): Promise<void> {
    if (this.#loaded) return;
    const stored = await this.#opts.store.load();
    if (stored) registerSecret(stored.accessToken, stored.refreshToken, stored.applicationToken);
    this.#tokens = stored ?? this.#tokens;
    this.#loaded = true;
  }

  async #current(): Promise<Tokens> {
    if (this.#fatal) throw this.#fatal;
    await this.#load();
    if (!this.#tokens) {
      throw new BitrixError({ method: 'oauth', kind: 'auth', retryable: false },
        'Bitrix24 OAuth app is not installed yet (no tokens stored): install the local app in Bitrix24 or run `asterisk-bitrix24 auth`');
    }
    return this.#tokens;
  }

  async #doRefresh(): Promise<Tokens> {
    const previous = await this.#current();
    try {
      const fresh = await requestTokens(this.#opts, { grant_type: 'refresh_token', refresh_token: previous.refreshToken }, {
        now: this.#now(), previous, ...(this.#opts.timeoutMs !== undefined ? { timeoutMs: this.#opts.timeoutMs } : {}),
      });
      await this.#opts.store.save(fresh);
      this.#tokens = fresh;
      return fresh;
    } catch (err) {
      if (err instanceof BitrixError && err.kind === 'auth') {
        this.#fatal = err;
        this.#opts.logger?.error(err.message);
      }
      throw err;
    }
  }
}
