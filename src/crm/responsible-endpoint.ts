/**
 * GET /responsible?phone=… for the dialplan (Asterisk `CURL()`): the extension of the responsible user of the CRM
 * entity that owns the number, as text/plain, or an empty body when there is none. The dialplan must never wait
 * on Bitrix24: an answer not ready within `timeoutMs` is empty (the lookup goes on and fills the cache for the
 * next call), answers are cached for `cacheMs`, and concurrent requests for one number share one lookup.
 */
import type http from 'node:http';
import type { RouteHandler } from '../integration/http-server.ts';
import type { Logger } from '../log/logger.ts';

export interface ResponsibleEndpointOptions {
  /** Number → extension ('' for none). May throw: that is an empty answer too. */
  lookup: (phone: string) => Promise<string>;
  cacheMs: number;
  timeoutMs: number;
  log: Logger;
  now?: () => number;
}

export function createResponsibleHandler(o: ResponsibleEndpointOptions): RouteHandler {
  const now = o.now ?? Date.now;
  const cache = new Map<string, { extension: string; at: number }>();
  const inFlight = new Map<string, Promise<string>>();

  const lookup = (phone: string): Promise<string> => {
    const running = inFlight.get(phone);
    if (running) return running;
    const started = o.lookup(phone)
      .then((extension) => {
        cache.set(phone, { extension, at: now() });
        return extension;
      })
      .catch((err: unknown) => {
        o.log.warn(`responsible lookup for ${phone} failed: ${(err as Error).message}`);
        return '';
      })
      .finally(() => inFlight.delete(phone));
    inFlight.set(phone, started);
    return started;
  };

  return async (_req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> => {
    const phone = (url.searchParams.get('phone') ?? '').trim();
    if (!phone) return answer(res, 400, '');
    const hit = cache.get(phone);
    if (hit && now() - hit.at < o.cacheMs) return answer(res, 200, hit.extension);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => { timer = setTimeout(() => resolve(''), o.timeoutMs); });
    const extension = await Promise.race([lookup(phone), late]);
    clearTimeout(timer);
    answer(res, 200, extension);
  };
}

function answer(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}
