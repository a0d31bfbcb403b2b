import axios from 'axios';
import { DaemonError } from '../errors.ts';
import { registerSecret } from '../log/redact.ts';
import { ensureSlash } from './oauth-token.ts';
import type { Tokens } from './token-store.ts';

/**
 * Turns what Bitrix24 POSTs when the local app is installed into tokens. Two forms exist
 * (settings/oauth/simple-way.md, api-reference/common/events/on-app-install.md):
 * - an app with UI opens its install page with `AUTH_ID, AUTH_EXPIRES, REFRESH_ID, member_id, DOMAIN, PROTOCOL, ...`;
 * - an API-only app gets the ONAPPINSTALL event: `event=ONAPPINSTALL&auth[access_token]=...&auth[client_endpoint]=...`
 *   (form-encoded; accepted flat as `auth[x]` keys or already nested as `auth: {x}`).
 */
export function parseInstallRequest(body: Record<string, unknown>, now: number = Date.now()): Tokens {
  const auth = nestedAuth(body);
  if (auth.access_token !== undefined || auth.refresh_token !== undefined) {
    const accessToken = required(auth.access_token, 'auth[access_token]');
    const refreshToken = required(auth.refresh_token, 'auth[refresh_token]');
    const domain = auth.domain ?? '';
    const clientEndpoint = ensureSlash(auth.client_endpoint ?? (domain ? `https://${domain}/rest/` : ''));
    if (!clientEndpoint) throw new DaemonError('E_WEBHOOK', 'install request has neither auth[client_endpoint] nor auth[domain]');
    return tokens({
      accessToken, refreshToken, clientEndpoint,
      expiresAt: expiry(auth.expires_in, auth.expires, now),
      memberId: auth.member_id ?? '',
      domain: domain || new URL(clientEndpoint).host,
      applicationToken: auth.application_token,
    });
  }
  const flat = (key: string) => (typeof body[key] === 'string' ? (body[key] as string) : undefined);
  const accessToken = required(flat('AUTH_ID'), 'AUTH_ID');
  const refreshToken = required(flat('REFRESH_ID'), 'REFRESH_ID');
  const domain = required(flat('DOMAIN'), 'DOMAIN');
  const scheme = flat('PROTOCOL') === '0' ? 'http' : 'https';
  return tokens({
    accessToken, refreshToken,
    clientEndpoint: `${scheme}://${domain}/rest/`,
    expiresAt: expiry(flat('AUTH_EXPIRES'), undefined, now),
    memberId: flat('member_id') ?? '',
    domain,
    // The UI form carries no application_token (APP_SID is a JS-SDK session id, not an event signature).
    applicationToken: undefined,
  });
}

type AuthFields = Partial<Record<'access_token' | 'refresh_token' | 'expires_in' | 'expires' | 'client_endpoint' |
  'member_id' | 'domain' | 'application_token', string>>;

function nestedAuth(body: Record<string, unknown>): AuthFields {
  const out: Record<string, string> = {};
  const nested = body.auth;
  if (nested && typeof nested === 'object') {
    for (const [k, v] of Object.entries(nested)) if (typeof v === 'string' || typeof v === 'number') out[k] = String(v);
  }
  for (const [k, v] of Object.entries(body)) {
    const m = /^auth\[([a-z_]+)\]$/.exec(k);
    if (m && (typeof v === 'string' || typeof v === 'number')) out[m[1] as string] = String(v);
  }
  return out as AuthFields;
}

function required(value: string | undefined, name: string): string {
  if (!value) throw new DaemonError('E_WEBHOOK', `install request lacks ${name}`);
  return value;
}

/** `expires_in`/AUTH_EXPIRES are seconds from now; `expires` is an absolute unix time. Default: 1 hour. */
function expiry(expiresIn: string | undefined, expiresAbs: string | undefined, now: number): number {
  const rel = Number(expiresIn);
  if (expiresIn !== undefined && Number.isFinite(rel) && rel > 0) return now + rel * 1000;
  const abs = Number(expiresAbs);
  if (expiresAbs !== undefined && Number.isFinite(abs) && abs > 0) return abs * 1000;
  return now + 3600_000;
}

function tokens(t: Omit<Tokens, 'applicationToken'> & { applicationToken: string | undefined }): Tokens {
  registerSecret(t.accessToken, t.refreshToken, t.applicationToken);
  const { applicationToken, ...rest } = t;
  return applicationToken ? { ...rest, applicationToken } : rest;
}

/**
 * The install handler is reachable by anyone who can reach the daemon's port, so tokens posted to it are trusted
 * only once the portal itself confirms them: `app.info` called with the posted access token at the posted
 * endpoint must name this application (a local application's CODE is its client_id, which exists on one portal
 * only). With `oauth.portal_url` configured, the endpoint must also be on that portal. Throws with the reason.
 */
export async function verifyInstalledTokens(tokens: Tokens, app: { clientId: string; portalUrl?: string; timeoutMs?: number }): Promise<void> {
  let endpoint: URL;
  try {
    endpoint = new URL(tokens.clientEndpoint);
  } catch {
    throw new DaemonError('E_WEBHOOK', 'install request: client_endpoint is not a URL');
  }
  if ((endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') || /[\s\r\n]/.test(tokens.clientEndpoint + tokens.domain)) {
    throw new DaemonError('E_WEBHOOK', 'install request: client_endpoint / domain is not a plain http(s) address');
  }
  if (app.portalUrl && new URL(app.portalUrl).host !== endpoint.host) {
    throw new DaemonError('E_WEBHOOK', `install request for ${endpoint.host}, but bitrix24.oauth.portal_url is ${new URL(app.portalUrl).host}`);
  }
  let code: unknown;
  try {
    const res = await axios.post(`${ensureSlash(tokens.clientEndpoint)}app.info.json`, { auth: tokens.accessToken }, {
      timeout: app.timeoutMs ?? 10_000, validateStatus: () => true, maxRedirects: 0,
    });
    const result = (res.data as { result?: Record<string, unknown> } | undefined)?.result;
    code = result?.CODE ?? result?.CLIENT_ID;
  } catch (err) {
    throw new DaemonError('E_WEBHOOK', `install request: the portal could not be asked to confirm the tokens (${(err as { code?: string }).code ?? 'network error'})`);
  }
  if (code !== app.clientId) throw new DaemonError('E_WEBHOOK', 'install request: the portal does not confirm these tokens for this application');
}
