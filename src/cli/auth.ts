/**
 * `auth --config FILE --code CODE`: for portals that cannot reach the daemon's install handler. The admin opens
 * the local application's authorization URL (README), copies the `code` from the redirect, and runs this within
 * 30 seconds; the tokens go to the state database, where the daemon picks them up (and refreshes them).
 */
import { exchangeAuthorizationCode } from '../bitrix/oauth-token.ts';
import { loadConfig } from '../config/load.ts';
import { DaemonError } from '../errors.ts';
import { KvTokenStore } from '../integration/daemon.ts';
import { openStore } from '../store/db.ts';

export async function authCommand(configPath: string, code: string, out: NodeJS.WritableStream): Promise<number> {
  const config = loadConfig(configPath);
  const oauth = config.bitrix24.oauth;
  if (!oauth) throw new DaemonError('E_CONFIG', `${configPath}: bitrix24.oauth is not configured (the daemon uses a webhook; nothing to authorize)`);
  const tokens = await exchangeAuthorizationCode({ code, clientId: oauth.clientId, clientSecret: oauth.clientSecret, oauthServer: oauth.oauthServer });
  const store = openStore(config.storage.path);
  try {
    new KvTokenStore(store).save(tokens);
  } finally {
    store.close();
  }
  out.write(`authorized on ${tokens.domain || tokens.clientEndpoint} (member ${tokens.memberId || '?'}); tokens stored in ${config.storage.path}\n`);
  return 0;
}
