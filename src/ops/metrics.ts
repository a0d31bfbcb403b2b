/**
 * GET /metrics (Prometheus text format, prom-client). One Registry per daemon — never prom-client's global one —
 * so several daemons in one process (tests) keep their own counts.
 *
 * Everything is learnt from events the components already emit (outbox delivered/retry/dead, AMI
 * connected/disconnected/keepalive/error, hook errors) or read on scrape (queue depth, calls in progress), so no
 * component knows about metrics. Hook call counts and latency come from wrapping this daemon's HookRunner.run
 * (the dispatcher calls it through the same object).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { IntentOp } from '../integration/dispatcher.ts';
import type { Daemon } from '../integration/daemon.ts';
import type { HookName } from '../hooks/contract.ts';
import type { BitrixReachability } from './health.ts';

const P = 'asterisk_bitrix24_';

/** Bitrix24 finish STATUS_CODE → a readable outcome label (a bounded set, as Prometheus labels must be). */
const OUTCOMES: Record<string, string> = {
  '200': 'answered', '304': 'missed', '486': 'busy', '603': 'declined', '603-S': 'cancelled', '404': 'invalid_number',
  '480': 'unavailable', '503': 'unavailable', '403': 'forbidden',
};

export interface DaemonMetrics {
  readonly registry: Registry;
  /** Prometheus text exposition. */
  render(): Promise<string>;
}

export function createMetrics(daemon: Daemon, bitrix: BitrixReachability): DaemonMetrics {
  const registry = new Registry();
  const counter = (name: string, help: string, labelNames: string[]) => new Counter({ name: P + name, help, labelNames, registers: [registry] });
  const gauge = (name: string, help: string, collect: (g: Gauge) => void, labelNames: string[] = []) =>
    new Gauge({ name: P + name, help, labelNames, registers: [registry], collect() { collect(this); } });

  // ---- calls and Bitrix24 requests, from the outbox ----
  const calls = counter('calls_total', 'Bitrix24 calls finished, by direction and outcome (finish status)', ['direction', 'outcome']);
  const requests = counter('bitrix_requests_total', 'Bitrix24 request attempts by method (register, show, hide, finish, attachRecord) and result', ['method', 'result']);
  const errors = counter('bitrix_errors_total', 'Failed Bitrix24 request attempts by method and kind (network, server, rate-limit, auth, permanent, …)', ['method', 'kind']);
  daemon.outbox.on('delivered', (op) => {
    requests.inc({ method: op.kind, result: 'ok' });
    if (op.kind !== 'finish') return;
    const { intent, facts } = op.payload as IntentOp;
    if (intent.kind !== 'finish') return;
    const direction = facts?.direction ?? 'unknown';
    calls.inc({ direction, outcome: OUTCOMES[intent.status] ?? 'other' });
  });
  daemon.outbox.on('retry', (op, error) => {
    requests.inc({ method: op.kind, result: 'retry' });
    errors.inc({ method: op.kind, kind: String((error as { kind?: unknown }).kind ?? 'other') });
  });
  daemon.outbox.on('dead', (op) => {
    requests.inc({ method: op.kind, result: 'dead' });
    errors.inc({ method: op.kind, kind: 'permanent' });
  });
  gauge('bitrix_reachable', '1 unless the last Bitrix24 request found it unreachable or refusing the credentials', (g) => {
    g.set(bitrix.state === 'unreachable' || bitrix.state === 'auth' ? 0 : 1);
  });
  gauge('outbox_depth', 'Bitrix24 requests waiting to be delivered (in flight included)', (g) => g.set(daemon.outbox.depth()));
  gauge('outbox_oldest_pending_age_seconds', 'Age of the oldest waiting request (0 when none)', (g) => g.set((daemon.outbox.oldestPendingAgeMs() ?? 0) / 1000));
  gauge('outbox_dead_letters', 'Requests Bitrix24 rejected for good (asterisk-bitrix24 outbox list)', (g) => g.set(daemon.outbox.deadLetters().length));
  gauge('active_calls', 'Calls in progress on the PBX(es)', (g) => g.set(daemon.sessions.reduce((n, s) => n + s.activeCalls, 0)));

  // ---- AMI ----
  const connects = counter('ami_connects_total', 'Successful AMI logins (the first one included)', ['pbx']);
  const reconnects = counter('ami_reconnects_total', 'AMI logins after a lost connection', ['pbx']);
  const disconnects = counter('ami_disconnects_total', 'Logged-in AMI connections that ended', ['pbx']);
  const protocolErrors = counter('ami_protocol_errors_total', 'AMI frames skipped as malformed (E_AMI_PROTOCOL)', ['pbx']);
  const rtt = new Gauge({ name: P + 'ami_keepalive_rtt_seconds', help: 'Round trip of the last answered keepalive Ping', labelNames: ['pbx'], registers: [registry] });
  const names = daemon.amiClients.map((_c, i) => daemon.sessions[i]?.name ?? daemon.config.ami[i]?.name ?? String(i));
  daemon.amiClients.forEach((client, i) => {
    const pbx = names[i]!;
    connects.inc({ pbx }, 0);
    reconnects.inc({ pbx }, 0);
    client.on('connected', (info) => {
      connects.inc({ pbx });
      if (info.reconnects > 0) reconnects.inc({ pbx });
    });
    client.on('disconnected', () => disconnects.inc({ pbx }));
    client.on('keepalive', (info) => rtt.set({ pbx }, info.rttMs / 1000));
    client.on('error', (err) => { if (err.code === 'E_AMI_PROTOCOL') protocolErrors.inc({ pbx }); });
  });
  gauge('ami_connected', '1 while the AMI connection is logged in', (g) => {
    daemon.amiClients.forEach((c, i) => g.set({ pbx: names[i]! }, c.isConnected ? 1 : 0));
  }, ['pbx']);

  // ---- customization hooks ----
  const hookCalls = counter('hook_calls_total', 'Customization hook runs by hook and outcome (ok, cancelled, error)', ['hook', 'status']);
  const hookErrors = counter('hook_errors_total', 'Customization hook failures by hook and phase (load, run)', ['hook', 'phase']);
  const hookSeconds = new Histogram({
    name: P + 'hook_duration_seconds', help: 'Customization hook run time', labelNames: ['hook'], registers: [registry],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  daemon.hooks.on('error', (ev) => hookErrors.inc({ hook: ev.hook, phase: ev.phase }));
  const hooks = daemon.hooks;
  const run = hooks.run.bind(hooks);
  hooks.run = (async (hook: HookName, params: never, ctx?: { callId?: string }) => {
    const outcome = await run(hook, params, ctx);
    if (outcome.status !== 'absent') {
      hookCalls.inc({ hook, status: outcome.status });
      hookSeconds.observe({ hook }, outcome.ms / 1000);
    }
    return outcome;
  }) as typeof hooks.run;
  gauge('hooks_loaded', 'Customization hooks by load status (active, error)', (g) => {
    const list = hooks.list();
    g.set({ status: 'active' }, list.filter((h) => h.status === 'active').length);
    g.set({ status: 'error' }, list.filter((h) => h.status === 'error').length);
  }, ['status']);

  // ---- the process: CPU, memory, GC, event-loop lag (nodejs_eventloop_lag_*) ----
  collectDefaultMetrics({ register: registry });

  return { registry, render: () => registry.metrics() };
}
