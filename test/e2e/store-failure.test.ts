/**
 * The state database refuses writes for a moment (another process holds its write lock: a backup, a stuck CLI)
 * while a click-to-call is answered. The daemon — a separate process, as in production — cannot save that
 * batch: it reloads what was saved, asks Asterisk what is up, and feeds again what only Bitrix24 told it (the
 * click's OriginateResponse): the call is still Bitrix24's click, finished once, never registered again.
 */
import { afterEach, expect, test } from '@jest/globals';
import Database from 'better-sqlite3';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRecordings } from '../fakes/recordings.ts';
import { freePort, startProcessFakes, waitFor } from '../ops/support.ts';
import { killIfAlive, spawnDaemon } from '../support/cli.ts';
import { AMI_SECRET, APP_TOKEN, compact, FIXTURES, PBX_MONITOR_DIR } from '../support/e2e.ts';

const TRACE = join(FIXTURES, 'click-to-call-answered.jsonl');
/** Recorded t of the OriginateResponse in the trace (the agent answered). */
const ORIGINATE_RESPONSE_T = 3011.5;

let cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

test('a batch that could not be saved: the click it carried is fed again after reconciling, and its call finished as the click', async () => {
  const { dir, bitrix, ami } = await startProcessFakes('ab24-store-', cleanup);
  const monitor = join(dir, 'monitor');
  mkdirSync(monitor);
  createRecordings(monitor, [TRACE]);
  // Real time: the lock must be taken between the Originate and the agent answering (2 s apart on the recording).
  ami.play(TRACE, { speed: 1, actionWaitMs: 20_000 });
  const httpPort = await freePort();
  const state = join(dir, 'state.sqlite');
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `
ami: { host: 127.0.0.1, port: ${ami.port}, username: bx24, secret: ${AMI_SECRET} }
bitrix24: { webhook_url: "${bitrix.webhookUrl}", default_user_id: 1, application_token: ${APP_TOKEN}, rate_limit: { per_second: 1000, burst: 1000 } }
pbx:
  trunks: [provider]
  recordings: { pbx_dir: ${PBX_MONITOR_DIR}, local_dir: ${monitor}, ready_timeout_ms: 3000 }
http: { host: 127.0.0.1, port: ${httpPort} }
storage: { path: ${state}, busy_timeout_ms: 50 }
customizations: { dir: ${join(dir, 'customizations')}, watch: false }
`);
  const out: string[] = [];
  const errors: string[] = []; // E_STORE lines come on stderr: kept apart so that lines split cleanly
  const daemon = spawnDaemon(config, out, errors);
  cleanup.push(() => killIfAlive(daemon));
  await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/healthz`).catch(() => undefined))?.status === 200, 20_000, 'the daemon to be up');

  // The agent clicks: Bitrix24 registers its call and posts the event.
  const reg = await fetch(`${bitrix.webhookUrl}telephony.externalcall.register.json`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ USER_ID: 2, PHONE_NUMBER: '89161234567', TYPE: 1, CALL_START_DATE: new Date().toISOString() }),
  });
  const callId = ((await reg.json()) as { result: { CALL_ID: string } }).result.CALL_ID;
  const posted = await fetch(`http://127.0.0.1:${httpPort}/bitrix24/events`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      event: 'ONEXTERNALCALLSTART', 'data[CALL_ID]': callId, 'data[USER_ID]': '2', 'data[PHONE_NUMBER]': '89161234567',
      'auth[application_token]': APP_TOKEN,
    }).toString(),
  });
  expect(posted.status).toBe(200);

  // Once the Originate is out (the click is saved as pending by then), another process takes the write lock
  // and keeps it until the agent has answered and the daemon failed to save that.
  await waitFor(() => ami.actions.some((a) => a.name === 'Originate'), 10_000, 'the Originate');
  const holder = new Database(state);
  cleanup.push(() => holder.close());
  // The agent's channel (created right after the Originate) is saved before the lock: the answer that follows
  // is what gets lost.
  await waitFor(() => (holder.prepare('SELECT count(*) AS n FROM calls').get() as { n: number }).n > 0, 10_000, 'the call to be saved');
  holder.exec('BEGIN IMMEDIATE');
  await waitFor(() => ami.recordedT > ORIGINATE_RESPONSE_T, 10_000, 'the OriginateResponse to be sent');
  const failures = () => errors.join('').split('\n').filter((l) => l.includes('could not save call state')).length;
  const before = failures();
  await waitFor(() => failures() > before, 10_000, 'a save that failed after the OriginateResponse');
  holder.exec('ROLLBACK');

  await ami.done();
  await waitFor(() => bitrix.requests.some((r) => /attachRecord/i.test(r.method) && r.httpStatus === 200), 20_000, 'the recording');
  const lines = compact(bitrix.requests.filter((r) => /^telephony\.externalcall\./i.test(r.method) && r.httpStatus === 200)
    .map((r) => ({ method: r.method.replace(/^telephony\.externalCall\./i, ''), params: r.params })), [...bitrix.calls.keys()]);
  // Bitrix24's own register at the click, then the daemon's finish of that very call: no second registration.
  expect(lines[0]).toBe('register #1 type=1 user=2 phone=89161234567 line=- crm_create=undefined');
  expect(lines.slice(1).map((l) => l.replace(/duration=\d+/, 'duration=N'))).toEqual([
    'finish #1 user=2 status=200 duration=N', 'attachRecord #1 1795324335.193.wav',
  ]);
  expect(errors.join('')).toMatch(/E_STORE/);
  expect(daemon.exitCode).toBeNull();
}, 60_000);
