import axios from 'axios';
import { registerSecret } from '../log/redact.ts';
import { BitrixError, classifyBitrixError } from './errors.ts';
import type { Tokens } from './token-store.ts';

export const DEFAULT_OAUTH_SERVER = 'https://oauth.bitrix.info';

export interface OAuthAppCredentials {
  clientId: string;
  clientSecret: string;
  /** Default https://oauth.bitrix.info (all secret-bearing requests go there, never to the portal). */
  oauthServer?: string;
}

/** The JSON oauth.bitrix.info answers with (settings/oauth/index.md, auto-renewal.md). */
interface TokenReply {
  access_token?: string;
  refresh_token?: string;
  expires_in?: number | string;
  client_endpoint?: string;
  member_id?: string;
  error?: string;
  error_description?: string;
}

const REINSTALL_HINT = 're-install the local app in Bitrix24 (its install handler stores new tokens) or run `asterisk-bitrix24 auth`';

/**
 * GET <oauthServer>/oauth/token/?grant_type=...: the one request both the authorization-code exchange and the
 * refresh make. `previous` fills what the reply does not carry (its `domain` is the OAuth server's, not the portal's).
 */
export async function requestTokens(
  app: OAuthAppCredentials,
  grant: { grant_type: 'refresh_token'; refresh_token: string } | { grant_type: 'authorization_code'; code: string },
  options: { now?: number; timeoutMs?: number; previous?: Tokens } = {},
): Promise<Tokens> {
  registerSecret(app.clientSecret, 'refresh_token' in grant ? grant.refresh_token : grant.code);
  const server = (app.oauthServer ?? DEFAULT_OAUTH_SERVER).replace(/\/+$/, '');
  const method = 'oauth/token';
  let status: number;
  let data: TokenReply | string;
  try {
    const res = await axios.get<TokenReply | string>(`${server}/oauth/token/`, {
      params: { ...grant, client_id: app.clientId, client_secret: app.clientSecret },
      timeout: options.timeoutMs ?? 15_000,
      validateStatus: () => true,
      maxRedirects: 0,
    });
    status = res.status;
    data = res.data;
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'ERR_NETWORK';
    throw classifyBitrixError({ method, networkCode: code, cause: redactedCause(err) });
  }
  const reply: TokenReply = typeof data === 'object' && data !== null ? data : {};
  if (reply.error !== undefined || status >= 400 || !reply.access_token || !reply.refresh_token) {
    const classified = classifyBitrixError({
      method, httpStatus: status, error: reply.error ?? (status >= 500 ? undefined : 'invalid_grant'),
      errorDescription: reply.error_description ?? (reply.error === undefined ? 'no tokens in the reply' : undefined),
    });
    if (classified.kind !== 'auth') throw classified;
    throw new BitrixError(
      { method, httpStatus: status, bitrixCode: classified.bitrixCode, description: classified.description, kind: 'auth', retryable: false },
      `Bitrix24 OAuth ${grant.grant_type} refused (${classified.bitrixCode}${classified.description ? `: ${classified.description}` : ''}): ${REINSTALL_HINT}`,
    );
  }
  registerSecret(reply.access_token, reply.refresh_token);
  const clientEndpoint = ensureSlash(reply.client_endpoint ?? options.previous?.clientEndpoint ?? '');
  const expiresIn = Number(reply.expires_in ?? 3600);
  const tokens: Tokens = {
    accessToken: reply.access_token,
    refreshToken: reply.refresh_token,
    expiresAt: (options.now ?? Date.now()) + (Number.isFinite(expiresIn) ? expiresIn : 3600) * 1000,
    clientEndpoint,
    memberId: reply.member_id ?? options.previous?.memberId ?? '',
    domain: hostOf(clientEndpoint) ?? options.previous?.domain ?? '',
  };
  if (options.previous?.applicationToken) tokens.applicationToken = options.previous.applicationToken;
  return tokens;
}

/** For the CLI `auth` command: trades the 30-second `code` from the portal's redirect for the first token pair. */
export function exchangeAuthorizationCode(
  p: OAuthAppCredentials & { code: string; now?: number; timeoutMs?: number },
): Promise<Tokens> {
  return requestTokens(p, { grant_type: 'authorization_code', code: p.code }, p);
}

export function ensureSlash(url: string): string {
  return url === '' || url.endsWith('/') ? url : `${url}/`;
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}

/** axios errors carry the request URL with client_secret in it: keep only the message as the cause. */
function redactedCause(err: unknown): Error {
  return new Error((err as Error).message);
}
