/**
 * Click-to-call on the recorded click-to-call traces: Bitrix24 posts ONEXTERNALCALLSTART (with the CALL_ID it
 * registered when the agent clicked), the daemon sends Originate, the AMI simulator answers it by replaying the
 * trace with the daemon's ActionID, and the given CALL_ID is finished — never registered again.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { APP_TOKEN, startHarness, type Harness } from '../support/e2e.ts';

let h: Harness | undefined;
afterEach(async () => { await h?.stop(); h = undefined; });

/** What Bitrix24 does when the agent clicks: registers the call itself (the first line of every expectation). */
async function bitrixRegistersClick(h: Harness, user: number, phone: string): Promise<string> {
  const res = await fetch(`${h.bitrix.webhookUrl}telephony.externalcall.register.json`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ USER_ID: user, PHONE_NUMBER: phone, TYPE: 1, CALL_START_DATE: new Date().toISOString(), SHOW: 1 }),
  });
  return ((await res.json()) as { result: { CALL_ID: string } }).result.CALL_ID;
}

const click = (callId: string, user: number, phone: string, token = APP_TOKEN) => new URLSearchParams({
  event: 'ONEXTERNALCALLSTART', 'data[CALL_ID]': callId, 'data[USER_ID]': String(user), 'data[PHONE_NUMBER]': phone,
  'data[CRM_ENTITY_TYPE]': 'CONTACT', 'data[CRM_ENTITY_ID]': '7', ts: String(Math.floor(Date.now() / 1000)),
  'auth[application_token]': token, 'auth[domain]': 'example.bitrix24.ru',
}).toString();

describe('ONEXTERNALCALLSTART → Originate → the given CALL_ID is finished', () => {
  test('click-to-call-answered: agent 101 answers, the client answers; finished 200 with talk time, recording attached', async () => {
    h = await startHarness({ trace: 'click-to-call-answered', http: true, actionWaitMs: 10_000 });
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const callId = await bitrixRegistersClick(h, 2, '89161234567');
    const res = await h.post('/bitrix24/events', click(callId, 2, '89161234567'));
    expect(res.status).toBe(200);
    await h.settle();
    const originate = h.ami.actions.filter((a) => a.name === 'Originate');
    expect(originate).toHaveLength(1);
    expect(originate[0]!.fields).toMatchObject({
      Channel: 'PJSIP/101', Context: 'from-internal', Exten: '89161234567', Priority: '1', CallerID: '89161234567', Async: 'true', Timeout: '30000',
    });
    expect(originate[0]!.raw).toContain(`Variable: __B24_CALL_ID=${callId}`);
    expect(h.compact()).toEqual([
      'register #1 type=1 user=2 phone=89161234567 line=- crm_create=undefined', // Bitrix24's own, at the click
      'finish #1 user=2 status=200 duration=4',
      'attachRecord #1 1795324335.193.wav',
    ]);
  });

  test('business processes run on the CRM entity the click came from (CRM_ENTITY_TYPE / CRM_ENTITY_ID)', async () => {
    h = await startHarness({ trace: 'click-to-call-answered', http: true, actionWaitMs: 10_000, yaml: 'bizproc:\n  - { event: answered, template_id: 21 }' });
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const callId = await bitrixRegistersClick(h, 2, '89161234567');
    await h.post('/bitrix24/events', click(callId, 2, '89161234567'));
    await h.settle();
    await h.bitrix.waitFor((reqs) => reqs.some((r) => r.method === 'bizproc.workflow.start'));
    expect(h.bitrix.requests.filter((r) => r.method === 'bizproc.workflow.start').map((r) => r.params)).toEqual([{
      TEMPLATE_ID: 21, DOCUMENT_ID: ['crm', 'CCrmDocumentContact', 'CONTACT_7'],
      PARAMETERS: { call_id: callId, phone: '89161234567', direction: 'outgoing', extension: '101', user_id: 2, did: '', status: '200', duration: 4, record: '' },
    }]);
  });

  test('click-to-call-local-channel: Local/102@from-internal, the same call finished for 102', async () => {
    h = await startHarness({ trace: 'click-to-call-local-channel', http: true, actionWaitMs: 10_000, yaml: 'click_to_call: { channel: "Local/{extension}@from-internal" }' });
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const callId = await bitrixRegistersClick(h, 3, '+79161234567');
    expect((await h.post('/bitrix24/events', click(callId, 3, '+79161234567'))).status).toBe(200);
    await h.settle();
    expect(h.ami.actions.find((a) => a.name === 'Originate')!.fields).toMatchObject({ Channel: 'Local/102@from-internal', Exten: '+79161234567' });
    expect(h.compact()).toEqual([
      'register #1 type=1 user=3 phone=+79161234567 line=- crm_create=undefined',
      'finish #1 user=3 status=200 duration=6',
      'attachRecord #1 1795324381.199.wav',
    ]);
  });

  test('click-to-call-agent-no-answer: OriginateResponse Failure (reason 3) → finished as cancelled, nothing registered', async () => {
    h = await startHarness({ trace: 'click-to-call-agent-no-answer', http: true, actionWaitMs: 10_000 });
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const callId = await bitrixRegistersClick(h, 2, '89161234567');
    await h.post('/bitrix24/events', click(callId, 2, '89161234567'));
    await h.settle();
    expect(h.compact()).toEqual([
      'register #1 type=1 user=2 phone=89161234567 line=- crm_create=undefined',
      'finish #1 user=2 status=603-S duration=0',
    ]);
    const finish = h.telephony().find((r) => r.method === 'finish')!;
    expect(finish.params.FAILED_REASON).toBe("the agent's phone (101) did not answer");
  });
});

describe("Asterisk's answer to Originate lost", () => {
  test('no answer (timeout), then the daemon restarts: the click is kept, and finished as failed at its deadline, once', async () => {
    h = await startHarness({ http: true, amiActionTimeoutMs: 200, yaml: 'click_to_call: { ring_timeout_ms: 1000 }' });
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const callId = await bitrixRegistersClick(h, 2, '89161234567');
    h.ami.setSilent(true); // Asterisk takes the Originate and says nothing
    expect((await h.post('/bitrix24/events', click(callId, 2, '89161234567'))).status).toBe(200);
    await h.waitForLog(/answer to Originate was lost \(Originate got no answer within 200 ms/);
    // the phones may be ringing: Bitrix24's call is not finished on the timeout itself
    expect(h.compact()).toHaveLength(1);
    h.ami.setSilent(false);
    await h.restart();
    expect(h.logLines.join('')).toContain('restored 1 click-to-call(s) awaiting');
    // Bitrix24 delivers the event again after the restart: known by its CALL_ID, not rung again
    await h.post('/bitrix24/events', click(callId, 2, '89161234567'));
    await h.waitForLog(/already in progress: repeated event ignored/);
    await h.bitrix.waitFor((reqs) => reqs.some((r) => /finish/i.test(r.method)));
    await h.daemon.outbox.idle();
    expect(h.ami.actions.filter((a) => a.name === 'Originate')).toHaveLength(1);
    expect(h.compact()).toEqual([
      'register #1 type=1 user=2 phone=89161234567 line=- crm_create=undefined',
      'finish #1 user=2 status=OTHER duration=0',
    ]);
    expect(h.telephony().find((r) => r.method === 'finish')!.params.FAILED_REASON).toMatch(/never reported how the Originate went/);
  });
});

describe('ONEXTERNALCALLBACKSTART (website callback form)', () => {
  test('registered as a callback (TYPE 4) on the default user, who is rung first, then the client; finished with talk time', async () => {
    h = await startHarness({ trace: 'click-to-call-answered', http: true, actionWaitMs: 10_000, defaultUserId: 2 });
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const res = await h.post('/bitrix24/events', new URLSearchParams({
      event: 'ONEXTERNALCALLBACKSTART', 'data[PHONE_NUMBER]': '89161234567', 'data[TEXT]': 'Please call me back', 'data[LINE_NUMBER]': '74951234567',
      'data[CRM_ENTITY_TYPE]': 'LEAD', 'data[CRM_ENTITY_ID]': '5', 'auth[application_token]': APP_TOKEN,
    }).toString());
    expect(res.status).toBe(200);
    await h.settle();
    expect(h.ami.actions.filter((a) => a.name === 'Originate').map((a) => [a.fields.Channel, a.fields.Exten])).toEqual([['PJSIP/101', '89161234567']]);
    const register = h.telephony().find((r) => r.method === 'register')!;
    expect(register.params).toMatchObject({ TYPE: 4, USER_ID: 2, PHONE_NUMBER: '89161234567', LINE_NUMBER: '74951234567', CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: 5 });
    expect(h.compact().slice(1)).toEqual(['finish #1 user=2 status=200 duration=4', 'attachRecord #1 1795324335.193.wav']);
  });
});

describe('bad, forged and repeated events', () => {
  test('a second click on the same CALL_ID while the first is in progress does not ring the agent twice', async () => {
    h = await startHarness({ trace: 'click-to-call-answered', http: true, actionWaitMs: 10_000 });
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const callId = await bitrixRegistersClick(h, 2, '89161234567');
    const body = click(callId, 2, '89161234567');
    const answers = await Promise.all([h.post('/bitrix24/events', body), h.post('/bitrix24/events', body)]);
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    await h.settle();
    expect(h.ami.actions.filter((a) => a.name === 'Originate')).toHaveLength(1);
    expect(h.compact().filter((l) => l.startsWith('finish'))).toHaveLength(1);
  });

  test('forged or missing token → 401 and a log line, nothing originated', async () => {
    h = await startHarness({ http: true });
    const forged = await h.post('/bitrix24/events', click('externalCall.x.1', 2, '89161234567', 'forged-token-000000'));
    const missing = await h.post('/bitrix24/events', 'event=ONEXTERNALCALLSTART&data[CALL_ID]=x&data[USER_ID]=2&data[PHONE_NUMBER]=1');
    expect([forged.status, missing.status]).toEqual([401, 401]);
    expect(h.ami.actions.filter((a) => a.name === 'Originate')).toHaveLength(0);
    expect(h.logLines.join('')).toMatch(/E_WEBHOOK.*application_token|application_token.*E_WEBHOOK/);
    expect(h.logLines.join('')).not.toContain(APP_TOKEN);
  });

  test('malformed bodies → 400; missing fields → 400; unknown events are acknowledged and ignored', async () => {
    h = await startHarness({ http: true });
    expect((await h.post('/bitrix24/events', 'event=%E0%A4%A&auth[application_token]=x')).status).toBe(400);
    expect((await h.post('/bitrix24/events', '{not json', 'application/json')).status).toBe(400);
    expect((await h.post('/bitrix24/events', 'x'.repeat(70_000))).status).toBe(413);
    const noFields = await h.post('/bitrix24/events', `event=ONEXTERNALCALLSTART&auth[application_token]=${APP_TOKEN}`);
    expect(noFields.status).toBe(400);
    const other = await h.post('/bitrix24/events', `event=ONCRMLEADADD&auth[application_token]=${APP_TOKEN}`);
    expect(await other.json()).toEqual({ ignored: true });
  });

  test('an agent without an internal number: the event is answered, the Bitrix24 call is finished as failed, the log names the user', async () => {
    h = await startHarness({ http: true });
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const callId = await bitrixRegistersClick(h, 1, '89161234567'); // user 1 (the admin) has no UF_PHONE_INNER
    expect((await h.post('/bitrix24/events', click(callId, 1, '89161234567'))).status).toBe(200);
    await h.bitrix.waitFor((reqs) => reqs.some((r) => /finish/i.test(r.method)));
    await h.daemon.outbox.idle();
    expect(h.compact()).toEqual(['register #1 type=1 user=1 phone=89161234567 line=- crm_create=undefined', 'finish #1 user=1 status=OTHER duration=0']);
    expect(h.telephony()[1]!.params.FAILED_REASON).toMatch(/user 1 has no internal number/);
    expect(h.logLines.join('')).toMatch(/Bitrix24 user 1 has no internal number/);
    expect(h.ami.actions.filter((a) => a.name === 'Originate')).toHaveLength(0);
  });

  test("Bitrix24's user list unreachable: the click fails with that reason, not as a user without a number", async () => {
    h = await startHarness({ http: true, startDaemon: false });
    h.bitrix.failNext(2, '500', 'user.get'); // at start-up, and when the click looks the agent up
    await h.daemon.start();
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const callId = await bitrixRegistersClick(h, 2, '89161234567');
    expect((await h.post('/bitrix24/events', click(callId, 2, '89161234567'))).status).toBe(200);
    await h.bitrix.waitFor((reqs) => reqs.some((r) => /finish/i.test(r.method)));
    await h.daemon.outbox.idle();
    expect(h.compact()).toEqual(['register #1 type=1 user=2 phone=89161234567 line=- crm_create=undefined', 'finish #1 user=2 status=OTHER duration=0']);
    expect(h.telephony()[1]!.params.FAILED_REASON).toMatch(/could not read Bitrix24's users to find user 2's internal number: .*server error/);
    expect(h.ami.actions.filter((a) => a.name === 'Originate')).toHaveLength(0);
  });

  test('a flood of 1,000 events in a few seconds: nothing crashes, each CALL_ID is originated at most once', async () => {
    h = await startHarness({ http: true });
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const bodies: string[] = [];
    for (let i = 0; i < 1000; i++) bodies.push(click(`externalCall.flood.${i % 50}`, 2, '89161234567', i % 3 === 0 ? 'forged-token-000000' : APP_TOKEN));
    const statuses = [];
    for (let i = 0; i < bodies.length; i += 100) statuses.push(...(await Promise.all(bodies.slice(i, i + 100).map((b) => h!.post('/bitrix24/events', b)))).map((r) => r.status));
    expect(new Set(statuses)).toEqual(new Set([200, 401]));
    await h.daemon.amiClients[0]!.action('Ping');
    const originates = h.ami.actions.filter((a) => a.name === 'Originate').map((a) => a.raw.match(/B24_CALL_ID=(\S+)/)![1]);
    expect(originates.length).toBe(50);
    expect(new Set(originates).size).toBe(50);
  }, 30_000);
});

/** What the portal posts when the local application is installed (the tokens offline events are read with). */
async function installApp(h: Harness): Promise<ReturnType<Harness['bitrix']['issueTokens']>> {
  const t = h.bitrix.issueTokens();
  await h.post('/bitrix24/install', new URLSearchParams({ 'auth[access_token]': t.accessToken, 'auth[refresh_token]': t.refreshToken, 'auth[client_endpoint]': t.clientEndpoint, 'auth[domain]': t.domain }).toString());
  return t;
}

describe('events bound by the CLI, delivered offline', () => {
  test('a callback whose clear failed is read again after a restart: cleared, not rung (nor registered) twice', async () => {
    h = await startHarness({ trace: 'click-to-call-answered', oauth: true, actionWaitMs: 10_000, defaultUserId: 2, yaml: 'events: { mode: offline, poll_interval_ms: 600000 }' });
    await installApp(h);
    await h.daemon.offlineEvents!.stop();
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    h.bitrix.queueOfflineEvent('ONEXTERNALCALLBACKSTART', { PHONE_NUMBER: '89161234567', CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: 5 });
    h.bitrix.failNext(1, '500', 'event.offline.clear');
    await expect(h.daemon.offlineEvents!.pollOnce()).rejects.toThrow(/event.offline.clear/);
    expect(h.bitrix.offlineEvents).toHaveLength(1);
    await h.restart(); // its first poll reads the same record again (same process_id, kept in the state database)
    await h.bitrix.waitFor((reqs) => reqs.some((r) => r.method === 'event.offline.clear' && r.httpStatus === 200));
    expect(h.bitrix.offlineEvents).toHaveLength(0);
    expect(h.telephony().filter((r) => r.method === 'register').map((r) => r.params.TYPE)).toEqual([4]);
    expect(h.ami.actions.filter((a) => a.name === 'Originate')).toHaveLength(1);
  });

  test('event-bind --offline binds both events; the daemon polls event.offline.get and rings the agent', async () => {
    h = await startHarness({ trace: 'click-to-call-answered', oauth: true, actionWaitMs: 10_000, yaml: 'events: { mode: offline, poll_interval_ms: 50 }' });
    const t = await installApp(h);
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { spawn } = await import('node:child_process');
    const config = join(h.dir, 'cli.yaml');
    writeFileSync(config, `ami: { host: 127.0.0.1, port: 1, username: u, secret: s }\n`
      + `bitrix24: { oauth: { client_id: ${h.bitrix.clientId}, client_secret: ${h.bitrix.clientSecret}, oauth_server: "${h.bitrix.baseUrl}" }, default_user_id: 1 }\n`
      + `storage: { path: ${join(h.dir, 'state.sqlite')} }\nevents: { mode: offline }\n`);
    const run = () => new Promise<string>((resolve) => {
      const child = spawn(process.execPath, [join(import.meta.dirname, '../../src/cli.ts'), 'event-bind', '--config', config, '--offline'], { env: { PATH: process.env.PATH ?? '' } });
      let text = '';
      child.stdout.on('data', (d) => (text += String(d)));
      child.stderr.on('data', (d) => (text += String(d)));
      child.on('close', () => resolve(text));
    });
    expect(await run()).toMatch(/\+ ONEXTERNALCALLSTART bound \(offline\)[\s\S]*\+ ONEXTERNALCALLBACKSTART bound \(offline\)/);
    expect(await run()).toMatch(/= ONEXTERNALCALLSTART already bound/); // idempotent
    expect(h.bitrix.eventHandlers.map((e) => [e.event, e.offline])).toEqual([['ONEXTERNALCALLSTART', 1], ['ONEXTERNALCALLBACKSTART', 1]]);

    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const callId = await (async () => {
      const res = await fetch(`${h!.bitrix.clientEndpoint}telephony.externalcall.register.json`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ auth: t.accessToken, USER_ID: 2, PHONE_NUMBER: '89161234567', TYPE: 1, CALL_START_DATE: new Date().toISOString() }),
      });
      return ((await res.json()) as { result: { CALL_ID: string } }).result.CALL_ID;
    })();
    h.bitrix.queueOfflineEvent('ONEXTERNALCALLSTART', { CALL_ID: callId, USER_ID: 2, PHONE_NUMBER: '89161234567' });
    // The poller backed off while the app was not installed yet: it is stopped, and polled here by hand.
    // The event is read with clear=0 and cleared once handled; here the clear fails once, so it is read again
    // (same process_id) — and only cleared, not rung twice.
    await h.daemon.offlineEvents!.stop();
    h.bitrix.failNext(1, '500', 'event.offline.clear');
    await expect(h.daemon.offlineEvents!.pollOnce()).rejects.toThrow();
    expect(h.bitrix.offlineEvents).toHaveLength(1);
    expect(await h.daemon.offlineEvents!.pollOnce()).toBe(1);
    expect(h.bitrix.offlineEvents).toHaveLength(0);
    await h.bitrix.waitFor((reqs) => reqs.some((r) => /attachRecord/i.test(r.method)), 10_000);
    expect(h.ami.actions.filter((a) => a.name === 'Originate')).toHaveLength(1);
    expect(h.compact().slice(1)).toEqual(['finish #1 user=2 status=200 duration=4', 'attachRecord #1 1795324335.193.wav']);
    const gets = h.bitrix.requests.filter((r) => r.method === 'event.offline.get' && r.httpStatus === 200).slice(-2);
    expect(gets.map((r) => String(r.params.clear))).toEqual(['0', '0']);
    expect(gets[1]!.params.process_id).toMatch(/^[0-9a-f]{32}$/); // the process that marked it reads it again
  }, 30_000);
});
