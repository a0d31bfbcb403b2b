/**
 * /healthz and /metrics of a running daemon, over HTTP, while real traces go through it and its surroundings
 * fail: what an admin's monitoring sees.
 */
import { afterEach, expect, test } from '@jest/globals';
import { metric, startRig, waitFor, type OpsRig } from './support.ts';

let rigs: OpsRig[] = [];
afterEach(async () => {
  for (const r of rigs) await r.stop();
  rigs = [];
});
async function rig(o?: Parameters<typeof startRig>[0]): Promise<OpsRig> {
  const r = await startRig(o);
  rigs.push(r);
  return r;
}
async function get(url: string): Promise<{ status: number; body: string; type: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' };
}

test('healthy: 200 with AMI, Bitrix24, outbox, hooks, calls; metrics count the call by direction and outcome', async () => {
  const r = await rig();
  r.play('inbound-answered');
  await r.ami.done();
  await waitFor(() => r.bitrix.requests.some((q) => /attachRecord/.test(q.method)), 15_000, 'attachRecord');
  await r.daemon.outbox.idle();
  const health = await get(r.url('/healthz'));
  expect(health.status).toBe(200);
  const report = JSON.parse(health.body);
  expect(report).toMatchObject({
    ok: true, problems: [], warnings: [],
    ami: [{ pbx: 'pbx', connected: true }],
    bitrix24: { state: 'ok', lastError: null },
    outbox: { depth: 0, oldestPendingAgeMs: 0, deadLetters: 0 },
    hooks: { active: 0, errors: [] },
    activeCalls: 0, users: 3,
  });
  expect(report.ami[0].lastKeepaliveAgeMs).toBeGreaterThanOrEqual(0);
  expect(health.body).not.toContain(r.bitrix.webhookSecret);

  const m = await get(r.url('/metrics'));
  expect(m.status).toBe(200);
  expect(m.type).toContain('text/plain');
  expect(metric(m.body, 'asterisk_bitrix24_calls_total{direction="incoming",outcome="answered"}')).toBe(1);
  for (const method of ['register', 'show', 'finish', 'attachRecord']) {
    expect(metric(m.body, `asterisk_bitrix24_bitrix_requests_total{method="${method}",result="ok"}`)).toBe(1);
  }
  expect(metric(m.body, 'asterisk_bitrix24_outbox_depth')).toBe(0);
  expect(metric(m.body, 'asterisk_bitrix24_ami_connected{pbx="pbx"}')).toBe(1);
  expect(metric(m.body, 'asterisk_bitrix24_ami_connects_total{pbx="pbx"}')).toBe(1);
  expect(metric(m.body, 'asterisk_bitrix24_ami_reconnects_total{pbx="pbx"}')).toBe(0);
  expect(metric(m.body, 'asterisk_bitrix24_bitrix_reachable')).toBe(1);
  expect(m.body).toMatch(/^nodejs_eventloop_lag_p99_seconds \d/m);
  expect(m.body).toMatch(/^process_resident_memory_bytes \d/m);
}, 30_000);

test('Bitrix24 down: 503 naming it, the queue waiting, errors by method; back up: 200 again', async () => {
  const r = await rig();
  await r.bitrix.setDown(true);
  const retried = new Promise((resolve) => r.daemon.outbox.once('retry', resolve));
  r.play('inbound-answered');
  await retried;
  const down = await get(r.url('/healthz'));
  expect(down.status).toBe(503);
  const report = JSON.parse(down.body);
  expect(report.ok).toBe(false);
  expect(report.problems).toEqual([expect.stringMatching(/^Bitrix24 is unreachable: /)]);
  expect(report.bitrix24.state).toBe('unreachable');
  expect(report.outbox.depth).toBeGreaterThan(0);
  expect(down.body).not.toContain(r.bitrix.webhookSecret);
  const m = await get(r.url('/metrics'));
  expect(metric(m.body, 'asterisk_bitrix24_bitrix_errors_total{method="register",kind="network"}')).toBeGreaterThanOrEqual(1);
  expect(metric(m.body, 'asterisk_bitrix24_bitrix_reachable')).toBe(0);
  expect(metric(m.body, 'asterisk_bitrix24_outbox_depth')).toBeGreaterThan(0);

  await r.bitrix.setDown(false);
  r.daemon.outbox.kick();
  await waitFor(async () => (await get(r.url('/healthz'))).status === 200, 15_000, 'healthy again');
}, 30_000);

test('AMI lost: 503 naming the PBX; reconnected: 200 and the reconnect counted', async () => {
  const r = await rig();
  const client = r.daemon.amiClients[0]!;
  const lost = new Promise((resolve) => client.once('disconnected', resolve));
  const back = new Promise((resolve) => client.once('connected', resolve));
  // The simulator refuses the reconnect attempts for a moment: the daemon stays disconnected until then.
  r.ami.setSilent(true);
  r.ami.dropConnections();
  await lost;
  const down = await get(r.url('/healthz'));
  expect(down.status).toBe(503);
  expect(JSON.parse(down.body).problems).toEqual(['AMI pbx is not connected']);
  expect(metric((await get(r.url('/metrics'))).body, 'asterisk_bitrix24_ami_connected{pbx="pbx"}')).toBe(0);
  r.ami.setSilent(false);
  r.ami.dropConnections();
  await back;
  expect((await get(r.url('/healthz'))).status).toBe(200);
  const m = (await get(r.url('/metrics'))).body;
  expect(metric(m, 'asterisk_bitrix24_ami_reconnects_total{pbx="pbx"}')).toBe(1);
  expect(metric(m, 'asterisk_bitrix24_ami_disconnects_total{pbx="pbx"}')).toBe(1);
}, 30_000);

test('hooks: runs, failures and latency counted per hook; a failing hook is a warning, not a 503', async () => {
  const r = await rig({
    customizations: {
      'process_phone_number.js': `module.exports = (i) => { throw new Error('boom'); };`,
    },
  });
  r.play('inbound-answered');
  await r.ami.done();
  await waitFor(() => r.bitrix.requests.some((q) => /finish/.test(q.method)), 15_000, 'finish');
  const m = (await get(r.url('/metrics'))).body;
  const errors = metric(m, 'asterisk_bitrix24_hook_errors_total{hook="process_phone_number",phase="run"}')!;
  expect(errors).toBeGreaterThanOrEqual(1);
  expect(metric(m, 'asterisk_bitrix24_hook_calls_total{hook="process_phone_number",status="error"}')).toBe(errors);
  expect(metric(m, 'asterisk_bitrix24_hook_duration_seconds_count{hook="process_phone_number"}')).toBe(errors);
  expect(metric(m, 'asterisk_bitrix24_hooks_loaded{status="active"}')).toBe(1);
  const health = await get(r.url('/healthz'));
  expect(health.status).toBe(200);
  expect(JSON.parse(health.body).hooks.active).toBe(1);
}, 30_000);

test('two daemons in one process keep their own metrics; wrong methods get 405', async () => {
  const a = await rig();
  const b = await rig();
  a.play('inbound-answered');
  await a.ami.done();
  await waitFor(() => a.bitrix.requests.some((q) => /finish/.test(q.method)), 15_000, 'finish');
  expect(metric((await get(a.url('/metrics'))).body, 'asterisk_bitrix24_bitrix_requests_total{method="finish",result="ok"}')).toBe(1);
  expect(metric((await get(b.url('/metrics'))).body, 'asterisk_bitrix24_bitrix_requests_total{method="finish",result="ok"}')).toBeUndefined();
  const post = await fetch(a.url('/metrics'), { method: 'POST', body: 'x' });
  expect(post.status).toBe(405);
  expect(a.logLines.join('')).toMatch(/POST \/metrics: method not allowed/);
}, 30_000);
