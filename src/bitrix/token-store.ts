import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DaemonError } from '../errors.ts';

/** OAuth 2.0 tokens of the local app on one portal (settings/oauth/index.md). */
export interface Tokens {
  accessToken: string;
  refreshToken: string;
  /** Epoch ms when the access token stops working (1 h after issue). */
  expiresAt: number;
  /** The portal's REST root, e.g. `https://portal.bitrix24.com/rest/` (calls go to clientEndpoint + method). */
  clientEndpoint: string;
  memberId: string;
  /** The portal's host name. */
  domain: string;
  /** Signs the events Bitrix24 sends the app (`auth[application_token]`); only the install/event hits carry it. */
  applicationToken?: string;
}

/** Where OAuthAuth keeps the tokens between restarts (the daemon backs it with SQLite). */
export interface TokenStore {
  load(): Promise<Tokens | undefined> | Tokens | undefined;
  save(tokens: Tokens): Promise<void> | void;
}

export class MemoryTokenStore implements TokenStore {
  #tokens: Tokens | undefined;
  constructor(initial?: Tokens) {
    this.#tokens = initial ? { ...initial } : undefined;
  }
  load(): Tokens | undefined {
    return this.#tokens ? { ...this.#tokens } : undefined;
  }
  save(tokens: Tokens): void {
    this.#tokens = { ...tokens };
  }
}

/** Tokens in a JSON file, written atomically (temp file + rename) and readable by the owner only. */
export class JsonFileTokenStore implements TokenStore {
  readonly path: string;
  constructor(path: string) {
    this.path = path;
  }

  async load(): Promise<Tokens | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new DaemonError('E_STORE', `cannot read OAuth token file ${this.path}: ${(err as Error).message}`);
    }
    try {
      const data = JSON.parse(text) as Tokens;
      if (typeof data.accessToken !== 'string' || typeof data.refreshToken !== 'string') throw new Error('tokens missing');
      return data;
    } catch (err) {
      throw new DaemonError('E_STORE', `OAuth token file ${this.path} is not valid: ${(err as Error).message}`);
    }
  }

  async save(tokens: Tokens): Promise<void> {
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      await mkdir(dirname(this.path), { recursive: true });
      await writeFile(tmp, JSON.stringify(tokens, null, 2) + '\n', { mode: 0o600 });
      await rename(tmp, this.path);
    } catch (err) {
      throw new DaemonError('E_STORE', `cannot write OAuth token file ${this.path}: ${(err as Error).message}`);
    }
  }
}
