import { afterEach, describe, expect, test } from '@jest/globals';
import type { Conversation } from '../../src/hooks/contract.ts';
import { CLIENT, DID, startCrm, type CrmRig } from './helpers.ts';

let rig: CrmRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const CONVERSATION: Conversation = {
  id: '1795324160.126', channel_id: 'PJSIP/101-00000044', parent_channel_id: 'PJSIP/provider-00000043', from: CLIENT, to: '101',
  from_local: false, to_local: true, trunk: DID, type: 2, type_code: 'incoming', state: 3, state_code: 'hung',
  started_at: '2026-11-22T08:09:20+03:00', answered_at: '2026-11-22T08:09:23+03:00', ended_at: '2026-11-22T08:09:28+03:00', was_answered: true,
};
const CALL = {
  id: '1795324160.126', from: CLIENT, to: DID, from_local: false, to_local: true, trunk: DID, type: 2 as const, state: 3 as const,
  started_at: CONVERSATION.started_at, answered_at: CONVERSATION.answered_at, ended_at: CONVERSATION.ended_at,
  conversations: { '1795324160.126': CONVERSATION },
};
const ENTITY_HOOK = `module.exports = (input) => ({ data: {
  SOURCE_DESCRIPTION: 'Звонок на ' + input.params.trunk + ' (' + input.params.entity_data.entity_type + ' ' + input.params.entity_data.entity_id + ')',
  STATUS_ID: 'IN_PROCESS', UF_CRM_CALL_ID: input.params.id,
}, state: 'success' });`;

describe('end of call: entity updates', () => {
  test('only entities created for this call are updated (crm.item.update), with the hook\'s fields', async () => {
    rig = await startCrm({ crmYaml: 'crm: { search: true, create: { incoming: lead } }', hooks: { 'get_updated_entity_fields.js': ENTITY_HOOK } });
    const created = await rig.crm.registrationCrmParams({ callId: 'new', direction: 'incoming', phone: '+79031112233', userId: 2 });
    const known = await rig.crm.registrationCrmParams({ callId: 'known', direction: 'incoming', phone: CLIENT, userId: 2 });
    expect(known.entity?.wasCreated).toBeUndefined();

    expect(await rig.crm.updateCreatedEntities({ callId: 'known', call: CALL })).toEqual([]);
    const leadId = created.fields.CRM_ENTITY_ID!;
    expect(await rig.crm.updateCreatedEntities({ callId: 'new', call: CALL })).toEqual([{ entityType: 'LEAD', entityId: leadId, via: 'daemon' }]);
    expect(rig.sent('crm.item.update').map((r) => r.params)).toEqual([{
      entityTypeId: 1, id: leadId, useOriginalUfNames: 'Y',
      fields: { sourceDescription: `Звонок на ${DID} (lead ${leadId})`, stageId: 'IN_PROCESS', UF_CRM_CALL_ID: '1795324160.126' },
    }]);
    expect(rig.emu.entities.find((e) => e.CRM_ENTITY_ID === leadId)?.FIELDS).toMatchObject({ stageId: 'IN_PROCESS' });
  });

  test('an entity Bitrix24 created through CRM_CREATE counts as created by the daemon', async () => {
    rig = await startCrm({ hooks: { 'get_updated_entity_fields.js': ENTITY_HOOK } });
    rig.crm.recordBitrixCreated('c1', [{ entityType: 'LEAD', entityId: 1201 }]);
    await rig.crm.updateCreatedEntities({ callId: 'c1', call: CALL });
    expect(rig.sent('crm.item.update').map((r) => [r.params.entityTypeId, r.params.id])).toEqual([[1, 1201]]);
  });

  test('empty data from the hook, or no hook: no request', async () => {
    rig = await startCrm({ hooks: { 'get_updated_entity_fields.js': 'module.exports = () => ({ data: {}, state: "success" });' } });
    rig.crm.recordBitrixCreated('c1', [{ entityType: 'LEAD', entityId: 1201 }]);
    expect(await rig.crm.updateCreatedEntities({ callId: 'c1', call: CALL })).toEqual([]);
    expect(rig.sent('crm.item.update')).toEqual([]);
  });
});

describe('end of call: the call activity', () => {
  test('get_updated_activity_fields → crm.activity.update on finish\'s CRM_ACTIVITY_ID', async () => {
    rig = await startCrm({ hooks: { 'get_updated_activity_fields.js': `module.exports = (input) => ({ data: {
      SUBJECT: 'Входящий ' + input.params.from + ' → ' + input.params.to, PRIORITY: 2 }, state: 'success' });` } });
    // A real call on the portal: register (linked to the contact) + finish give the activity id.
    const emu = rig.emu;
    const register = await fetch(`${emu.webhookUrl}telephony.externalCall.register.json`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ USER_ID: 2, PHONE_NUMBER: CLIENT, TYPE: 2, CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 651 }),
    }).then((r) => r.json()) as { result: { CALL_ID: string } };
    const finish = await fetch(`${emu.webhookUrl}telephony.externalCall.finish.json`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ CALL_ID: register.result.CALL_ID, USER_ID: 2, DURATION: 5, STATUS_CODE: '200' }),
    }).then((r) => r.json()) as { result: { CRM_ACTIVITY_ID: number } };
    const activityId = finish.result.CRM_ACTIVITY_ID;

    expect(await rig.crm.updateActivity({ callId: 'c1', activityId, conversation: CONVERSATION })).toBe(true);
    expect(rig.sent('crm.activity.update').map((r) => r.params)).toEqual([{ id: activityId, fields: { SUBJECT: 'Входящий +79161234567 → 101', PRIORITY: 2 } }]);
    expect(rig.emu.activities.get(activityId)).toMatchObject({ SUBJECT: 'Входящий +79161234567 → 101', fields: { PRIORITY: 2 } });
    // No activity (the call had no entity): nothing to update.
    expect(await rig.crm.updateActivity({ callId: 'c1', conversation: CONVERSATION })).toBe(false);
  });

  test('no hook: no request', async () => {
    rig = await startCrm();
    expect(await rig.crm.updateActivity({ callId: 'c1', activityId: 5, conversation: CONVERSATION })).toBe(false);
    expect(rig.emu.requests).toEqual([]);
  });
});
