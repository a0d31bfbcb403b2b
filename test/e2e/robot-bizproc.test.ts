/**
 * Robots and business processes: a deal robot's webhook starts a callback (agent first, then the client) and
 * the deal moves by the outcome; deals move on request in all three input styles; business processes start on
 * call events with the call's parameters.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { startHarness, type Harness } from '../support/e2e.ts';

let h: Harness | undefined;
afterEach(async () => { await h?.stop(); h = undefined; });

const TOKEN = 'robot-token-8c1e77';
const ROBOT = `robot_webhook:
  token: ${TOKEN}
  stages:
    - { category_id: 0, positive: EXECUTING, negative: LOSE, neutral: PREPARATION }
    - { category_id: 3, positive: "C3:WON", negative: "C3:LOSE", neutral: "C3:NEW" }`;

function seedDeal(h: Harness, id: number, categoryId = 0): void {
  h.bitrix.entities.push({ CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 7, NAME: 'Client', ASSIGNED_BY_ID: 2, PHONES: ['89161234567'], FIELDS: {} } as never);
  h.bitrix.items.push({ entityTypeId: 2, id, fields: { categoryId, assignedById: 2, contactId: 7, stageId: categoryId ? `C${categoryId}:NEW` : 'NEW' } } as never);
}
const stage = (h: Harness, id: number) => (h.bitrix.items.find((i) => i.entityTypeId === 2 && i.id === id)!.fields as { stageId: string }).stageId;
const get = (h: Harness, query: string) => fetch(`http://127.0.0.1:${h.daemon.http!.port}/webhook/callback?${query}`);

describe('robot webhook callback: the deal moves by the outcome', () => {
  test('client answered (click-to-call-answered trace) → POSITIVE stage; registered on the deal contact, finished 200', async () => {
    h = await startHarness({ trace: 'click-to-call-answered', http: true, actionWaitMs: 10_000, yaml: ROBOT });
    seedDeal(h, 12);
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    const res = await get(h, `token=${TOKEN}&deal_id=12`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, status: 'originated' });
    await h.settle();
    expect(h.ami.actions.find((a) => a.name === 'Originate')!.fields).toMatchObject({ Channel: 'PJSIP/101', Exten: '89161234567' });
    const register = h.telephony().find((r) => r.method === 'register')!;
    expect(register.params).toMatchObject({ USER_ID: 2, PHONE_NUMBER: '89161234567', TYPE: 1, CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 7 });
    expect(h.compact().slice(1)).toEqual(['finish #1 user=2 status=200 duration=4', 'attachRecord #1 1795324335.193.wav']);
    await h.bitrix.waitFor((reqs) => reqs.some((r) => r.method === 'crm.item.update'));
    expect(stage(h, 12)).toBe('EXECUTING');
  });

  test('agent did not answer (click-to-call-agent-no-answer trace) → NEUTRAL stage of the deal\'s own pipeline', async () => {
    h = await startHarness({ trace: 'click-to-call-agent-no-answer', http: true, actionWaitMs: 10_000, yaml: ROBOT });
    seedDeal(h, 13, 3);
    await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
    expect((await get(h, `token=${TOKEN}&DealID=13&phone=89161234567&extension=101`)).status).toBe(200);
    await h.settle();
    await h.bitrix.waitFor((reqs) => reqs.some((r) => r.method === 'crm.item.update'));
    expect(stage(h, 13)).toBe('C3:NEW');
    expect(h.compact().slice(1)).toEqual(['finish #1 user=2 status=603-S duration=0']);
  });
});

describe('robot webhook: deal moves, input styles, bad input', () => {
  test('query string, form fields and JSON all work (action=move)', async () => {
    h = await startHarness({ http: true, yaml: ROBOT });
    seedDeal(h, 20);
    const url = `http://127.0.0.1:${h.daemon.http!.port}/webhook/callback`;
    expect((await fetch(`${url}?token=${TOKEN}&action=move&DealID=20&Result=NEGATIVE`)).status).toBe(200);
    expect(stage(h, 20)).toBe('LOSE');
    expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${TOKEN}&action=move&deal_id=20&result=NEUTRAL` })).status).toBe(200);
    expect(stage(h, 20)).toBe('PREPARATION');
    expect((await fetch(`${url}?token=${TOKEN}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'move', dealId: 20, result: 'POSITIVE' }) })).status).toBe(200);
    expect(stage(h, 20)).toBe('EXECUTING');
  });

  test('invalid parameters → 400 naming them; wrong token → 401; nothing changes', async () => {
    h = await startHarness({ http: true, yaml: ROBOT });
    seedDeal(h, 21);
    const cases: Array<[string, number, RegExp]> = [
      [`token=${TOKEN}&action=move&deal_id=abc&result=POSITIVE`, 400, /deal_id must be a positive integer/],
      [`token=${TOKEN}&action=move&deal_id=21&result=MAYBE`, 400, /result must be POSITIVE, NEGATIVE or NEUTRAL/],
      [`token=${TOKEN}&action=move&result=POSITIVE`, 400, /deal_id is required/],
      [`token=${TOKEN}&action=dance&deal_id=21`, 400, /action must be callback or move/],
      [`token=wrong-token-000&action=move&deal_id=21&result=POSITIVE`, 401, /token/],
      [`action=move&deal_id=21&result=POSITIVE`, 401, /token/],
    ];
    for (const [query, status, message] of cases) {
      const res = await get(h, query);
      expect([query, res.status]).toEqual([query, status]);
      expect((await res.json() as { error: string }).error).toMatch(message);
    }
    expect(stage(h, 21)).toBe('NEW');
    const bad = await fetch(`http://127.0.0.1:${h.daemon.http!.port}/webhook/callback?token=${TOKEN}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{oops' });
    expect(bad.status).toBe(400);
  });
});

describe('business processes on call events', () => {
  test('answered and recording events start their templates on the call\'s CRM entity with the call\'s parameters', async () => {
    h = await startHarness({ trace: 'inbound-answered', yaml: `bizproc:\n  - { event: answered, template_id: 12 }\n  - { event: missed, template_id: 13 }\n  - { event: recording, template_id: 14 }` });
    await h.settle();
    await h.bitrix.waitFor((reqs) => reqs.filter((r) => r.method === 'bizproc.workflow.start').length === 2);
    await h.daemon.outbox.idle();
    const starts = h.bitrix.requests.filter((r) => r.method === 'bizproc.workflow.start').map((r) => r.params);
    const leadId = [...h.bitrix.calls.values()][0]!.crmEntityId;
    expect(starts).toEqual([
      { TEMPLATE_ID: 12, DOCUMENT_ID: ['crm', 'CCrmDocumentLead', `LEAD_${leadId}`], PARAMETERS: {
        call_id: [...h.bitrix.calls.keys()][0], phone: '+79161234567', direction: 'incoming', extension: '101', user_id: 2, did: '74951234567',
        status: '200', duration: 5, record: '' } },
      { TEMPLATE_ID: 14, DOCUMENT_ID: ['crm', 'CCrmDocumentLead', `LEAD_${leadId}`], PARAMETERS: expect.objectContaining({
        record: '/var/spool/asterisk/monitor/2026/11/22/1795324160.126.wav' }) },
    ]);
  });

  test('a missed call starts the missed template', async () => {
    h = await startHarness({ trace: 'inbound-no-answer', yaml: `bizproc:\n  - { event: answered, template_id: 12 }\n  - { event: missed, template_id: 13 }` });
    await h.settle();
    await h.bitrix.waitFor((reqs) => reqs.some((r) => r.method === 'bizproc.workflow.start'));
    expect(h.bitrix.requests.filter((r) => r.method === 'bizproc.workflow.start').map((r) => [r.params.TEMPLATE_ID, r.params.PARAMETERS.status])).toEqual([[13, '304']]);
  });
});
