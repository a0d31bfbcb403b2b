/**
 * The daemon's HTTP endpoint (http.host:http.port): the local application's install handler. Features add
 * their own routes: Bitrix24 event routes (click-to-call), /healthz and /metrics (src/ops). Bodies are capped
 * and parsed defensively: a malformed or forged request gets a 4xx and a log line, never an exception in the
 * daemon.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OAuthAuth } from '../bitrix/oauth-auth.ts';
import { parseInstallRequest, verifyInstalledTokens } from '../bitrix/install.ts';
import type { Logger } from '../log/logger.ts';
import type { Daemon } from './daemon.ts';

const MAX_BODY_BYTES = 64 * 1024;

/** A route handler: features (click-to-call events, metrics, …) register their own paths. */
export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<void> | void;

export class HttpServer {
  readonly #daemon: Daemon;
  readonly #log: Logger;
  readonly #server: http.Server;
  readonly #routes = new Map<string, RouteHandler>();

  constructor(o: { daemon: Daemon; log: Logger }) {
    this.#daemon = o.daemon;
    this.#log = o.log.child({ component: 'http' });
    this.#server = http.createServer((req, res) => {
      this.#route(req, res).catch((err: Error) => {
        this.#log.error(`${req.method} ${req.url?.split('?')[0]}: ${err.message}`, { code: 'E_WEBHOOK' });
        if (!res.headersSent) reply(res, 500, { error: 'internal error' });
      });
    });
    // Requests Node's parser refuses (random bytes, bad headers, oversized headers): a 400 and a log line.
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      this.#log.warn(`malformed HTTP request rejected: ${err.code ?? err.message}`, { code: 'E_WEBHOOK' });
      // Destroyed once the answer is out: the parser no longer reads this socket, so the peer's FIN would never
      // be seen and a half-closed socket would hold server.close() (and the daemon's stop) forever.
      if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', () => socket.destroy());
      else socket.destroy();
    });
    // CONNECT (proxy tunnels) bypasses the request handler; without this Node drops it without a word.
    this.#server.on('connect', (req: http.IncomingMessage, socket: import('node:stream').Duplex) => {
      this.#log.warn(`CONNECT ${JSON.stringify(String(req.url).slice(0, 100))}: not a proxy (405)`, { code: 'E_WEBHOOK' });
      socket.on('error', () => undefined);
      socket.end('HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', () => socket.destroy());
    });
  }

  get port(): number {
    return (this.#server.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(): Promise<void> {
    const { host, port } = this.#daemon.config.http;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => { this.#server.off('error', reject); resolve(); });
    });
    this.#log.info(`listening on http://${host}:${this.port}`);
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Adds a route (`method` may be '*' for any). Paths match exactly, without the query string. */
  route(method: string, path: string, handler: RouteHandler): void {
    this.#routes.set(`${method.toUpperCase()} ${path}`, handler);
  }

  async #route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://daemon');
    } catch {
      this.#log.warn(`${req.method} request with a malformed target rejected`, { code: 'E_WEBHOOK' });
      return reply(res, 400, { error: 'malformed request target' });
    }
    const handler = this.#routes.get(`${req.method ?? ''} ${url.pathname}`) ?? this.#routes.get(`* ${url.pathname}`);
    if (handler) return handler(req, res, url);
    if (req.method === 'POST' && url.pathname === '/bitrix24/install') return this.#install(req, res);
    // The path is cut short and quoted: a scanner's junk must not forge log lines.
    this.#log.warn(`${req.method} ${JSON.stringify(url.pathname.slice(0, 100))}: no such endpoint (404)`, { code: 'E_WEBHOOK' });
    reply(res, 404, { error: 'not found' });
  }

  /** Bitrix24 posts the local app's tokens here when the admin installs (or re-installs) it. */
  async #install(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const auth = this.#daemon.auth;
    if (!(auth instanceof OAuthAuth)) return reply(res, 404, { error: 'the daemon is configured with a webhook, not a local application' });
    const body = await readForm(req);
    if (!body) return reply(res, 400, { error: 'body must be form-encoded and at most 64 KiB' });
    let tokens;
    try {
      tokens = parseInstallRequest(body);
      const oauth = this.#daemon.config.bitrix24.oauth!;
      await verifyInstalledTokens(tokens, { clientId: oauth.clientId, ...(oauth.portalUrl ? { portalUrl: oauth.portalUrl } : {}) });
    } catch (err) {
      this.#log.warn(`install request rejected: ${(err as Error).message}`, { code: 'E_WEBHOOK' });
      return reply(res, 400, { error: (err as Error).message });
    }
    await auth.setTokens(tokens);
    this.#log.info(`local application installed on ${tokens.domain} (member ${tokens.memberId})`);
    reply(res, 200, { ok: true });
  }
}

/** The raw body, or undefined when it exceeds `max` bytes (the rest is not read). */
export async function readBody(req: http.IncomingMessage, max = MAX_BODY_BYTES): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a form-encoded (or JSON) body of at most 64 KiB; undefined when it is too large or malformed. */
export async function readForm(req: http.IncomingMessage): Promise<Record<string, string> | undefined> {
  const text = await readBody(req);
  if (text === undefined) return undefined;
  const type = req.headers['content-type'] ?? '';
  if (type.includes('application/json')) {
    try {
      const parsed = JSON.parse(text) as unknown;
      return parsed && typeof parsed === 'object' ? (parsed as Record<string, string>) : undefined;
    } catch {
      return undefined;
    }
  }
  return Object.fromEntries(new URLSearchParams(text));
}

export function reply(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
