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

describe('end of call', () => {
  const hooks = {
    'get_updated_entity_fields.js': `module.exports = (i) => ({ data: { COMMENTS: 'Talked ' + Object.keys(i.params.conversations).length + ' conversation(s), ended ' + (i.params.ended_at ? 'yes' : 'no') }, state: 'success' });`,
    'get_updated_activity_fields.js': `module.exports = (i) => ({ data: { DESCRIPTION: 'Answered: ' + i.params.was_answered }, state: 'success' });`,
  };

  test('entities the daemon created are updated by get_updated_entity_fields; the call\'s activity by get_updated_activity_fields', async () => {
    h = await startHarness({ startDaemon: false, yaml: 'crm: { create: { incoming: lead } }', customizations: hooks });
    await h.daemon.start();
    h.play('inbound-answered');
    await h.settle();
    await h.bitrix.waitFor((reqs) => reqs.some((r) => r.method === 'crm.activity.update'));
    await h.daemon.outbox.idle();
    const lead = h.bitrix.entities.find((e) => e.CRM_ENTITY_TYPE === 'LEAD')!;
    const updates = h.bitrix.requests.filter((r) => r.method === 'crm.item.update');
    expect(updates.map((r) => [r.params.entityTypeId, r.params.id])).toEqual([[1, lead.CRM_ENTITY_ID]]);
    expect(updates[0]!.params.fields).toMatchObject({ comments: 'Talked 1 conversation(s), ended yes' });
    const activity = h.bitrix.requests.find((r) => r.method === 'crm.activity.update')!;
    expect(activity.params.fields).toMatchObject({ DESCRIPTION: 'Answered: true' });
  });

  test('an entity that already existed is never updated', async () => {
    h = await startHarness({ startDaemon: false, yaml: 'crm: { search: true, create: { incoming: lead } }', customizations: hooks });
    h.bitrix.entities.push(contact(7, '+79161234567', 3));
    await h.daemon.start();
    h.play('inbound-answered');
    await h.settle();
    await h.daemon.outbox.idle();
    expect(h.bitrix.requests.filter((r) => r.method === 'crm.item.update' || r.method === 'crm.item.add')).toEqual([]);
  });
});
