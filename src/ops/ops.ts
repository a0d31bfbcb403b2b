/**
 * The operations side of a running daemon, attached in one call from Daemon.start(): GET /healthz and
 * GET /metrics on its HTTP server (when enabled), and a periodic look at the outbox so that dead letters put
 * back by `asterisk-bitrix24 outbox retry` (another process, writing the same state database) go out even
 * when no new call wakes the queue.
 */
import type http from 'node:http';
import type { Daemon } from '../integration/daemon.ts';
import { reply } from '../integration/http-server.ts';
import { BitrixReachability, healthReport, type HealthReport } from './health.ts';
import { createMetrics, type DaemonMetrics } from './metrics.ts';

/** How soon a dead letter retried from the CLI is picked up by the running daemon. */
export const OUTBOX_RESCAN_MS = 5_000;

export interface Ops {
  /** Undefined when the HTTP server is disabled (nothing would expose the metrics). */
  readonly metrics: DaemonMetrics | undefined;
  health(): HealthReport;
  close(): void;
}

export function attachOps(daemon: Daemon): Ops {
  const startedAt = Date.now();
  const log = daemon.log.child({ component: 'http' });
  const bitrix = new BitrixReachability(daemon.outbox);
  const health = () => healthReport(daemon, bitrix, startedAt);
  const rescan = setInterval(() => daemon.outbox.kick(), OUTBOX_RESCAN_MS);
  rescan.unref();
  const http = daemon.http;
  const metrics = http ? createMetrics(daemon, bitrix) : undefined;

  if (http && metrics) {
    http.route('GET', '/healthz', (_req, res) => {
      const report = health();
      reply(res, report.ok ? 200 : 503, report);
    });
    http.route('GET', '/metrics', async (_req, res) => {
      const text = await metrics.render();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(text);
    });
    for (const path of ['/healthz', '/metrics']) http.route('*', path, (req, res) => methodNotAllowed(req, res, log));
  }
  return { metrics, health, close: () => clearInterval(rescan) };
}

function methodNotAllowed(req: http.IncomingMessage, res: http.ServerResponse, log: Daemon['log']): void {
  log.warn(`${req.method} ${req.url?.split('?')[0]}: method not allowed`, { code: 'E_WEBHOOK' });
  res.setHeader('allow', 'GET');
  reply(res, 405, { error: 'method not allowed' });
}
