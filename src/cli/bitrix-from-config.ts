/** A Bitrix24 client for one-shot CLI commands, authenticated as the daemon is (webhook, or OAuth tokens in the state DB). */
import { BitrixClient } from '../bitrix/client.ts';
import { LeakyBucket } from '../bitrix/limiter.ts';
import { OAuthAuth } from '../bitrix/oauth-auth.ts';
import { WebhookAuth } from '../bitrix/webhook-auth.ts';
import type { Config } from '../config/schema.ts';
import { KvTokenStore } from '../integration/daemon.ts';
import { silentLogger } from '../log/logger.ts';
import { openStore } from '../store/db.ts';

export function openBitrix(config: Config): { client: BitrixClient; close: () => void } {
  const b = config.bitrix24;
  // Only OAuth needs the state file (its tokens): a webhook check runs without access to it.
  const store = b.webhookUrl === undefined ? openStore(config.storage.path) : undefined;
  const auth = b.webhookUrl !== undefined ? new WebhookAuth(b.webhookUrl) : new OAuthAuth({
    clientId: b.oauth.clientId, clientSecret: b.oauth.clientSecret, oauthServer: b.oauth.oauthServer, store: new KvTokenStore(store!),
  });
  const limiter = new LeakyBucket({ ratePerSec: b.rateLimit.perSecond, burst: b.rateLimit.burst });
  const client = new BitrixClient(auth, limiter, silentLogger(), { timeoutMs: 15_000 });
  return {
    client,
    close: () => {
      client.close();
      limiter.close();
      store?.close();
    },
  };
}

/** Where Bitrix24 should post events: events.handler_url, else the daemon's own http address. */
export function eventHandlerUrl(config: Config): string {
  return config.events.handlerUrl ?? `http://${config.http.host}:${config.http.port}/bitrix24/events`;
}
