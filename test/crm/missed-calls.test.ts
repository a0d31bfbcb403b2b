import { afterEach, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CALL_STARTED_AT, CLIENT, DID, NOW, startCrm, type CrmRig } from './helpers.ts';

let rig: CrmRig | undefined;
let telegram: http.Server | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
  if (telegram) await new Promise((r) => telegram!.close(r));
  telegram = undefined;
});

const CONTACT = { entityType: 'CONTACT' as const, entityId: 651, assignedById: 3 };
const missed = (extra: Record<string, unknown> = {}) => ({
  callId: 'pbx/1795324160.126', direction: 'incoming' as const, answered: false, phone: CLIENT, did: DID,
  lastRungExtension: '101', startedAt: CALL_STARTED_AT, ...extra,
});

describe('missed incoming call → task', () => {
  test('entity_responsible: the contact\'s responsible owns the task, linked to the contact, deadline +2h in MSK', async () => {
    rig = await startCrm({ crmYaml: 'crm: { missed_calls: { create_task: true } }' });
    const out = await rig.crm.onCallFinished(missed({ entity: CONTACT }));
    expect(rig.sent('tasks.task.add').map((r) => r.params)).toEqual([{
      fields: {
        TITLE: 'Missed call from +79161234567', RESPONSIBLE_ID: 3, CREATED_BY: 3, DEADLINE: '2026-11-22T10:09:28+03:00',
        DESCRIPTION: 'Missed call from +79161234567\nTime: 2026-11-22 08:09 (Europe/Moscow)\nLine: 74951234567\nRang: 101',
        UF_CRM_TASK: ['C_651'],
      },
    }]);
    expect(out).toEqual({ taskId: rig.emu.tasks[0]!.id, closedTaskIds: [] });
    // The outbox repeats the op: still one task.
    expect(await rig.restart().onCallFinished(missed({ entity: CONTACT }))).toEqual(out);
    expect(rig.emu.tasks).toHaveLength(1);
  });

  test('entity_responsible read with crm.item.get when the entity came without one (Bitrix24 created it)', async () => {
    rig = await startCrm({ crmYaml: 'crm: { missed_calls: { create_task: true } }' });
    await rig.crm.onCallFinished(missed({ entity: { entityType: 'COMPANY', entityId: 643 } }));
    expect(rig.sent('crm.item.get').map((r) => r.params)).toEqual([{ entityTypeId: 4, id: 643 }]);
    expect(rig.emu.tasks[0]!.fields).toMatchObject({ RESPONSIBLE_ID: 4, UF_CRM_TASK: ['CO_643'] });
  });

  test('fallback: no entity → last_rung (extension 102 → user 3); nobody rang → default user', async () => {
    rig = await startCrm({ crmYaml: 'crm: { missed_calls: { create_task: true } }' });
    await rig.crm.onCallFinished(missed({ callId: 'c1', lastRungExtension: '102' }));
    await rig.crm.onCallFinished(missed({ callId: 'c2', lastRungExtension: undefined }));
    await rig.crm.onCallFinished(missed({ callId: 'c3', lastRungExtension: '199' })); // no such user
    expect(rig.emu.tasks.map((t) => [t.fields.RESPONSIBLE_ID, t.fields.UF_CRM_TASK])).toEqual([[3, undefined], [1, undefined], [1, undefined]]);
  });

  test('last_rung first, then fixed:<id>; created_by and a "tomorrow 10:00" deadline', async () => {
    rig = await startCrm({ crmYaml: `crm:
  missed_calls: { create_task: true, owner: [last_rung, "fixed:4"], created_by: 1, deadline: "tomorrow 10:00" }` });
    await rig.crm.onCallFinished(missed({ callId: 'c1', entity: CONTACT }));
    await rig.crm.onCallFinished(missed({ callId: 'c2', entity: CONTACT, lastRungExtension: undefined }));
    expect(rig.emu.tasks.map((t) => [t.fields.RESPONSIBLE_ID, t.fields.CREATED_BY, t.fields.DEADLINE]))
      .toEqual([[2, 1, '2026-11-23T10:00:00+03:00'], [4, 1, '2026-11-23T10:00:00+03:00']]);
  });

  test('process_task_creation_params changes the task; empty data cancels it', async () => {
    rig = await startCrm({
      crmYaml: 'crm: { missed_calls: { create_task: true } }',
      hooks: {
        'process_task_creation_params.js': `module.exports = (input) => input.params.arNewTaskData.UF_CRM_TASK
          ? { data: { arNewTaskData: { DEADLINE: '2026-11-23T10:00:00+03:00', TITLE: 'Перезвонить ' + input.params.arNewTaskData.TITLE.slice(17), RESPONSIBLE_ID: 4 } }, state: 'success' }
          : { data: {} };`,
      },
    });
    await rig.crm.onCallFinished(missed({ entity: CONTACT }));
    await rig.crm.onCallFinished(missed({ callId: 'c2' }));
    expect(rig.emu.tasks).toHaveLength(1);
    expect(rig.emu.tasks[0]!.fields).toMatchObject({
      TITLE: 'Перезвонить +79161234567', RESPONSIBLE_ID: 4, CREATED_BY: 3, DEADLINE: '2026-11-23T10:00:00+03:00', UF_CRM_TASK: ['C_651'],
    });
  });

  test('no task: create_task off (default), answered, outgoing, withheld', async () => {
    rig = await startCrm();
    await rig.crm.onCallFinished(missed());
    rig = (await rig.close(), await startCrm({ crmYaml: 'crm: { missed_calls: { create_task: true } }' }));
    await rig.crm.onCallFinished(missed({ direction: 'outgoing' }));
    await rig.crm.onCallFinished(missed({ phone: 'anonymous', withheld: true }));
    await rig.crm.onCallFinished(missed({ answered: true }));
    expect(rig.emu.tasks).toEqual([]);
  });

  test('the owner is notified in Bitrix24 (im.notify.system.add) and on Telegram (own chat and the shared one)', async () => {
    const got: Array<{ url: string; body: any }> = [];
    telegram = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        got.push({ url: req.url ?? '', body: JSON.parse(raw) });
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ ok: true, result: { message_id: got.length } }));
      });
    });
    await new Promise<void>((r) => telegram!.listen(0, '127.0.0.1', r));
    const port = (telegram.address() as AddressInfo).port;
    rig = await startCrm({ crmYaml: `crm:
  missed_calls:
    create_task: true
    notify: true
    telegram:
      bot_token: "123456:test-bot-token"
      api_url: http://127.0.0.1:${port}/
      chat_id: "-100500"
      users: [{ user_id: 3, chat_id: "3003" }, { user_id: 4, chat_id: "4004" }]` });
    await rig.crm.onCallFinished(missed({ entity: CONTACT }));
    const taskId = rig.emu.tasks[0]!.id;
    const text = `Missed call from +79161234567 (2026-11-22 08:09). Task #${taskId}, deadline 2026-11-22T10:09:28+03:00`;
    expect(rig.emu.notifications).toEqual([{ method: 'im.notify.system.add', userId: 3, message: text, at: expect.any(Number) }]);
    expect(got).toEqual([
      { url: '/bot123456:test-bot-token/sendMessage', body: { chat_id: '3003', text } },
      { url: '/bot123456:test-bot-token/sendMessage', body: { chat_id: '-100500', text } },
    ]);
  });

  test('a failing notification does not undo or repeat the task', async () => {
    rig = await startCrm({ crmYaml: 'crm: { missed_calls: { create_task: true, notify: true } }' });
    rig.emu.failNext(1, { error: 'ACCESS_DENIED', description: 'Access denied', status: 403 }, 'im.notify.system.add');
    const out = await rig.crm.onCallFinished(missed({ entity: CONTACT }));
    expect(out.taskId).toBe(rig.emu.tasks[0]!.id);
    expect(rig.lines.some((l) => l.includes('could not notify user 3'))).toBe(true);
  });
});

describe('callback closes the task', () => {
  test('the client calls again and is answered within the window: the open task is completed; later calls change nothing', async () => {
    rig = await startCrm({ crmYaml: 'crm: { missed_calls: { create_task: true, callback_window: 24h } }' });
    await rig.crm.onCallFinished(missed({ callId: 'm1', entity: CONTACT }));
    await rig.crm.onCallFinished(missed({ callId: 'm2', entity: CONTACT }));
    const [t1, t2] = rig.emu.tasks;
    rig.clock.now = NOW + 3 * 3_600_000;
    const out = await rig.crm.onCallFinished({ callId: 'a1', direction: 'incoming', answered: true, phone: '79161234567' });
    expect(out).toEqual({ closedTaskIds: [t1!.id, t2!.id] });
    expect(rig.sent('tasks.task.complete').map((r) => r.params)).toEqual([{ taskId: t1!.id }, { taskId: t2!.id }]);
    expect(rig.emu.tasks.map((t) => t.status)).toEqual([5, 5]);
    expect(await rig.crm.onCallFinished({ callId: 'a2', direction: 'outgoing', answered: true, phone: CLIENT })).toEqual({ closedTaskIds: [] });
  });

  test('an agent calling back (outgoing, answered) closes it too; a task older than the window or closed by hand is left', async () => {
    rig = await startCrm({ crmYaml: 'crm: { missed_calls: { create_task: true, callback_window: 1h } }' });
    await rig.crm.onCallFinished(missed({ callId: 'old', entity: CONTACT }));
    rig.clock.now = NOW + 2 * 3_600_000;
    await rig.crm.onCallFinished(missed({ callId: 'new', entity: CONTACT }));
    const [old, fresh] = rig.emu.tasks;
    fresh!.status = 5; // the manager completed it by hand
    const out = await rig.crm.onCallFinished({ callId: 'o1', direction: 'outgoing', answered: true, phone: CLIENT });
    expect(out).toEqual({ closedTaskIds: [fresh!.id] });
    expect(old!.status).toBe(2);
    expect(rig.lines.some((l) => l.includes(`task ${fresh!.id} could not be completed`))).toBe(true);
  });

  test('Bitrix24 unreachable while closing: the error is thrown (the outbox retries) and the task stays open here', async () => {
    rig = await startCrm({ crmYaml: 'crm: { missed_calls: { create_task: true } }' });
    await rig.crm.onCallFinished(missed({ entity: CONTACT }));
    rig.emu.failNext(1, '500', 'tasks.task.complete');
    await expect(rig.crm.onCallFinished({ callId: 'a1', direction: 'incoming', answered: true, phone: CLIENT })).rejects.toThrow(/server error/);
    expect(await rig.crm.onCallFinished({ callId: 'a1', direction: 'incoming', answered: true, phone: CLIENT }))
      .toEqual({ closedTaskIds: [rig.emu.tasks[0]!.id] });
  });
});
