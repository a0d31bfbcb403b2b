import { DaemonError } from '../errors.ts';
import { registerSecret } from '../log/redact.ts';
import type { AuthEndpoint, BitrixAuth } from './auth.ts';

const WEBHOOK_PATH = /^(.*\/rest\/)(\d+)\/([^/]+)\/?$/;

/**
 * Incoming webhook `https://portal/rest/<userId>/<secret>/` (local-integrations/local-webhooks.md): the secret in
 * the path is the credential, so it is registered with the redactor before anything can log it.
 */
export class WebhookAuth implements BitrixAuth {
  readonly userId: number;
  /** `https://portal` without the secret: safe to print. */
  readonly portal: string;
  readonly #baseUrl: string;

  constructor(url: string) {
    let parsed: URL;
    try {
      parsed = new URL(url.trim());
    } catch {
      throw new DaemonError('E_CONFIG', 'bitrix webhook URL is not a URL: expected https://<portal>/rest/<userId>/<secret>/');
    }
    const match = WEBHOOK_PATH.exec(parsed.pathname);
    if ((parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || !match || parsed.search || parsed.hash) {
      throw new DaemonError('E_CONFIG',
        `bitrix webhook URL ${parsed.origin}/… must look like https://<portal>/rest/<userId>/<secret>/`);
    }
    const [, prefix, userId, secret] = match as unknown as [string, string, string, string];
    registerSecret(secret, decodeURIComponent(secret));
    this.userId = Number(userId);
    this.portal = parsed.origin;
    this.#baseUrl = `${parsed.origin}${prefix}${userId}/${secret}/`;
  }

  async endpoint(): Promise<AuthEndpoint> {
    return { baseUrl: this.#baseUrl };
  }

  /** A webhook has nothing to refresh: a refused webhook stays refused until the admin fixes the URL. */
  async onAuthError(): Promise<boolean> {
    return false;
  }

  toString(): string {
    return `${this.portal}/rest/${this.userId}/***/`;
  }
}
