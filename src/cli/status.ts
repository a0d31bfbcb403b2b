/**
 * `status --config FILE`: the running daemon's /healthz as a table. When no daemon answers, the state database
 * is read directly (queue, dead letters, calls in progress) so an admin still sees what is waiting.
 * Exit code: 0 healthy, 1 running but unhealthy, 3 not running (as `systemctl status`).
 */
import http from 'node:http';
import { loadConfig } from '../config/load.ts';
import type { HealthReport } from '../ops/health.ts';
import { openStateOffline } from './state-offline.ts';

const ASK_TIMEOUT_MS = 3000;

export async function statusCommand(configPath: string, out: NodeJS.WritableStream): Promise<number> {
  const config = loadConfig(configPath);
  const { host, port, enabled } = config.http;
  // A daemon listening on every interface is asked on loopback.
  const target = `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${port}/healthz`;
  const asked = enabled ? await askDaemon(target) : { error: 'http.enabled is false' };
  if ('report' in asked) {
    out.write(renderReport(asked.report, target));
    return asked.report.ok ? 0 : 1;
  }
  out.write(`daemon: not running (${asked.error}; asked ${enabled ? target : 'nothing'})\n`);
  const state = openStateOffline(config);
  try {
    const depth = state.outbox.depth();
    const oldest = state.outbox.oldestPendingAgeMs();
    const dead = state.outbox.deadLetters().length;
    const rows: Array<[string, string]> = [
      ['state', config.storage.path],
      ['outbox', `${depth} waiting${oldest !== undefined ? ` (oldest ${age(oldest)})` : ''}, ${dead} dead letter(s)`],
      ...config.ami.map((a): [string, string] => [`calls ${a.name}`, `${state.store.loadActiveCalls(a.name).length} in progress when it stopped`]),
    ];
    out.write(table(rows));
    if (dead > 0) out.write(`\n! ${dead} dead letter(s): asterisk-bitrix24 outbox list --config ${configPath}\n`);
  } finally {
    state.close();
  }
  return 3;
}

async function askDaemon(url: string): Promise<{ report: HealthReport } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: ASK_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { if (body.length < 1_000_000) body += d; });
      res.on('end', () => {
        try {
          const report = JSON.parse(body) as HealthReport;
          if (typeof report.ok !== 'boolean' || !Array.isArray(report.ami)) throw new Error('not a health report');
          resolve({ report });
        } catch {
          resolve({ error: `HTTP ${res.statusCode} without a health report: is another program on that port?` });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${ASK_TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code === 'ECONNREFUSED' ? 'connection refused' : err.message }));
  });
}

export function renderReport(r: HealthReport, target: string): string {
  const rows: Array<[string, string]> = [
    ...r.ami.map((a): [string, string] => [`AMI ${a.pbx}`,
      `${a.connected ? 'connected' : 'NOT CONNECTED'}${a.lastKeepaliveAgeMs !== null ? `, keepalive answered ${age(a.lastKeepaliveAgeMs)} ago` : ''}`]),
    ['Bitrix24', `${r.bitrix24.state}${r.bitrix24.lastOkAgeMs !== null ? `, last success ${age(r.bitrix24.lastOkAgeMs)} ago` : ''}`],
    ['outbox', `${r.outbox.depth} waiting${r.outbox.depth > 0 ? ` (oldest ${age(r.outbox.oldestPendingAgeMs)})` : ''}, ${r.outbox.deadLetters} dead letter(s)`],
    ['hooks', `${r.hooks.active} active, ${r.hooks.errors.length} with errors`],
    ['calls', `${r.activeCalls} in progress`],
    ['users', `${r.users} extension(s) mapped to Bitrix24 users`],
  ];
  const head = `daemon: ${r.ok ? 'OK' : 'UNHEALTHY'} (up ${age(r.uptimeSec * 1000)}, ${target})\n`;
  const notes = [...r.problems.map((p) => `✘ ${p}`), ...r.warnings.map((w) => `! ${w}`)];
  return head + table(rows) + (notes.length ? `\n${notes.join('\n')}\n` : '');
}

function table(rows: Array<[string, string]>): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}\n`).join('');
}

export function age(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}
