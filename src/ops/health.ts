/**
 * GET /healthz: what an admin (or a monitor) needs to know at a glance. 200 when the daemon can do its job —
 * every AMI connection logged in and Bitrix24 neither unreachable nor refusing the credentials — 503 otherwise,
 * with the reasons in `problems`. Dead letters and broken hooks are `warnings`: they need attention but calls
 * still flow. The body carries no secret (no URLs, no tokens): it may be scraped by anything on the network.
 */
import type { Outbox } from '../outbox/outbox.ts';
import type { Daemon } from '../integration/daemon.ts';
import { redact } from '../log/redact.ts';

export type BitrixState = 'unknown' | 'ok' | 'limited' | 'unreachable' | 'auth';

/** Bitrix24 as the last request found it, learnt from the outbox's delivery events. */
export class BitrixReachability {
  state: BitrixState = 'unknown';
  /** Epoch ms of the last delivered request. */
  lastOkAt: number | undefined;
  /** Epoch ms and (redacted) message of the last failed attempt. */
  lastError: { at: number; message: string } | undefined;

  constructor(outbox: Outbox) {
    outbox.on('delivered', () => {
      this.state = 'ok';
      this.lastOkAt = Date.now();
    });
    // Bitrix24 answered, with a permanent refusal of this one request: it is reachable.
    outbox.on('dead', (op) => {
      this.state = 'ok';
      this.lastError = { at: Date.now(), message: redact(op.error) };
    });
    outbox.on('retry', (_op, error) => {
      this.state = classify(error);
      this.lastError = { at: Date.now(), message: redact(error.message) };
    });
  }
}

function classify(error: Error): BitrixState {
  const kind = (error as { kind?: unknown }).kind;
  if (kind === 'auth') return 'auth';
  if (kind === 'rate-limit' || kind === 'operating-limit') return 'limited';
  // network, server (5xx), or anything else a retry was scheduled for
  return 'unreachable';
}

export interface HealthReport {
  ok: boolean;
  problems: string[];
  warnings: string[];
  ami: Array<{ pbx: string; connected: boolean; lastKeepaliveAgeMs: number | null }>;
  bitrix24: { state: BitrixState; lastOkAgeMs: number | null; lastError: string | null };
  outbox: { depth: number; oldestPendingAgeMs: number; deadLetters: number };
  hooks: { active: number; errors: Array<{ hook: string; file: string; error: string }> };
  activeCalls: number;
  users: number;
  uptimeSec: number;
}

export function healthReport(daemon: Daemon, bitrix: BitrixReachability, startedAt: number, now = Date.now()): HealthReport {
  const problems: string[] = [];
  const warnings: string[] = [];
  const ami = daemon.amiClients.map((c, i) => {
    const pbx = daemon.sessions[i]?.name ?? daemon.config.ami[i]?.name ?? String(i);
    if (!c.isConnected) problems.push(`AMI ${pbx} is not connected`);
    return { pbx, connected: c.isConnected, lastKeepaliveAgeMs: c.lastKeepaliveOkAt > 0 ? now - c.lastKeepaliveOkAt : null };
  });
  if (bitrix.state === 'unreachable') problems.push(`Bitrix24 is unreachable: ${bitrix.lastError?.message ?? 'unknown error'}`);
  if (bitrix.state === 'auth') problems.push(`Bitrix24 refuses the credentials: ${bitrix.lastError?.message ?? 'unknown error'}`);
  if (bitrix.state === 'limited') warnings.push('Bitrix24 asks the daemon to slow down (rate limit); requests are delayed');
  const deadLetters = daemon.outbox.deadLetters().length;
  if (deadLetters > 0) warnings.push(`${deadLetters} request(s) in the dead-letter list (asterisk-bitrix24 outbox list)`);
  const listing = daemon.hooks.list();
  const hookErrors = listing.filter((h) => h.status === 'error' || h.lastError !== undefined)
    .map((h) => ({ hook: h.hook, file: h.file, error: redact(h.lastError ?? 'failed to load') }));
  for (const h of hookErrors) warnings.push(`hook ${h.hook} (${h.file}): ${h.error}`);
  const report: HealthReport = {
    ok: problems.length === 0,
    problems,
    warnings,
    ami,
    bitrix24: {
      state: bitrix.state,
      lastOkAgeMs: bitrix.lastOkAt === undefined ? null : now - bitrix.lastOkAt,
      lastError: bitrix.lastError?.message ?? null,
    },
    outbox: { depth: daemon.outbox.depth(), oldestPendingAgeMs: daemon.outbox.oldestPendingAgeMs() ?? 0, deadLetters },
    hooks: { active: listing.filter((h) => h.status === 'active').length, errors: hookErrors },
    activeCalls: daemon.sessions.reduce((n, s) => n + s.activeCalls, 0),
    users: daemon.users.size,
    uptimeSec: Math.round((now - startedAt) / 1000),
  };
  return report;
}
