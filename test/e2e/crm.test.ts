/**
 * The CRM side inside the real daemon, on real traces: entity search and creation on register, missed-call tasks
 * and their closing when the caller gets through, configured black lists, and the dialplan's /responsible.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { startHarness, type Harness } from '../support/e2e.ts';

let h: Harness | undefined;
afterEach(async () => { await h?.stop(); h = undefined; });

const contact = (id: number, phone: string, assignedBy: number) =>
  ({ CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: id, NAME: 'Pavel Client', ASSIGNED_BY_ID: assignedBy, PHONES: [phone], FIELDS: {} }) as never;

describe('entities', () => {
  test('a known contact: the call is registered on it, nothing is created', async () => {
    h = await startHarness({ startDaemon: false, yaml: 'crm: { search: true }' });
    h.bitrix.entities.push(contact(7, '+79161234567', 3));
    await h.daemon.start();
    h.play('inbound-answered');
    await h.settle();
    const register = h.telephony().find((r) => r.method === 'register')!;
    expect(register.params).toMatchObject({ CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 7 });
    expect(h.bitrix.requests.filter((r) => r.method === 'crm.item.add')).toEqual([]);
  });

  test('an unknown caller: one lead created with the hook\'s fields, and the call registered on it', async () => {
    h = await startHarness({
      startDaemon: false, yaml: 'crm: { search: true, create: { incoming: lead } }',
      customizations: { 'process_entity_creation_params.js': `module.exports = (i) => ({ data: { ...i.params, TITLE: 'Call from ' + i.params.PHONE[0].VALUE, SOURCE_ID: 'CALL' }, state: 'success' });` },
    });
    await h.daemon.start();
    h.play('inbound-answered');
    await h.settle();
    const adds = h.bitrix.requests.filter((r) => r.method === 'crm.item.add');
    expect(adds).toHaveLength(1);
    expect(adds[0]!.params).toMatchObject({ entityTypeId: 1, fields: expect.objectContaining({ title: 'Call from +79161234567', sourceId: 'CALL' }) });
    const lead = h.bitrix.entities.find((e) => e.CRM_ENTITY_TYPE === 'LEAD')!;
    expect(h.telephony().find((r) => r.method === 'register')!.params).toMatchObject({ CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: lead.CRM_ENTITY_ID, CRM_CREATE: 0 });
  });
});

describe('missed calls', () => {
  test('a missed call becomes a task for the agent who rang last, shaped by the hook; the caller getting through later closes it', async () => {
    h = await startHarness({
      startDaemon: false, yaml: 'crm: { missed_calls: { create_task: true, owner: [last_rung, default], deadline: "+2h" } }',
      customizations: { 'process_task_creation_params.js': `module.exports = (i) => ({ data: { arNewTaskData: { ...i.params.arNewTaskData, TITLE: 'Перезвонить: ' + i.params.arNewTaskData.TITLE } }, state: 'success' });` },
    });
    await h.daemon.start();
    h.play('inbound-agent-rejects'); // +79161234567, 101 declines
    await h.settle();
    const adds = h.bitrix.requests.filter((r) => r.method === 'tasks.task.add');
    expect(adds).toHaveLength(1);
    expect(adds[0]!.params.fields).toMatchObject({ RESPONSIBLE_ID: 2, TITLE: expect.stringMatching(/^Перезвонить: Missed call from \+79161234567/) });
    expect(adds[0]!.params.fields.DEADLINE).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$/);

    h.play('inbound-answered'); // the same caller, answered this time
    await h.settle();
    const completes = h.bitrix.requests.filter((r) => r.method === 'tasks.task.complete');
    expect(completes).toHaveLength(1);
    expect(h.bitrix.requests.filter((r) => r.method === 'tasks.task.add')).toHaveLength(1);
  });

  test('an answered call creates no task', async () => {
    h = await startHarness({ trace: 'inbound-answered', yaml: 'crm: { missed_calls: { create_task: true } }' });
    await h.settle();
    expect(h.bitrix.requests.filter((r) => r.method.startsWith('tasks.'))).toEqual([]);
  });
});

describe('registration filter and /responsible', () => {
  test('a black-listed trunk: nothing is registered, the log says why', async () => {
    h = await startHarness({ trace: 'inbound-answered', yaml: 'crm: { registration_filter: { deny: { trunks: [provider] } } }' });
    await h.settle();
    expect(h.compact()).toEqual([]);
    expect(h.logLines.join('')).toMatch(/not registered: .*provider/);
  });

  test('GET /responsible answers the responsible extension as text, and an empty answer within its timeout when Bitrix24 hangs', async () => {
    h = await startHarness({ http: true, startDaemon: false, yaml: 'crm: { responsible_endpoint: { timeout_ms: 400 } }' });
    h.bitrix.entities.push(contact(7, '+79161234567', 3));
    await h.daemon.start();
    const url = `http://127.0.0.1:${h.daemon.http!.port}/responsible?phone=%2B79161234567`;
    const ok = await fetch(url);
    expect(ok.headers.get('content-type')).toMatch(/text\/plain/);
    expect(await ok.text()).toBe('102');
    h.bitrix.failNext(1, 'hang', 'telephony.externalCall.searchCrmEntities');
    const started = Date.now();
    const slow = await fetch(`http://127.0.0.1:${h.daemon.http!.port}/responsible?phone=%2B79990001122`);
    expect(await slow.text()).toBe('');
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
