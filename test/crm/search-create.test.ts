import { afterEach, describe, expect, test } from '@jest/globals';
import { CLIENT, DID, startCrm, type CrmRig } from './helpers.ts';

let rig: CrmRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('entity search before register', () => {
  test('a known client: the contact wins (contact > company > lead), register carries it, nothing is created', async () => {
    rig = await startCrm({ crmYaml: 'crm: { search: true, create: { incoming: lead } }' });
    const reg = await rig.crm.registrationCrmParams({ callId: 'pbx/1795324160.126', direction: 'incoming', phone: CLIENT, userId: 2, did: DID });
    expect(reg.fields).toEqual({ CRM_CREATE: 0, CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 651 });
    expect(reg.entity).toEqual({ entityType: 'CONTACT', entityId: 651, assignedById: 3, name: 'Сергей Кузнецов', responsibleExtension: '102' });
    expect(reg).toMatchObject({ userId: 2, routed: false });
    expect(rig.sent('telephony.externalCall.searchCrmEntities').map((r) => r.params)).toEqual([{ PHONE_NUMBER: CLIENT }]);
    expect(rig.sent('crm.item.add')).toEqual([]);
    expect(rig.crm.createdEntities('pbx/1795324160.126')).toEqual([]);
  });

  test('crm.prefer changes the winner; route_to_responsible registers the call for the responsible (ext 102 → user 3)', async () => {
    rig = await startCrm({ crmYaml: 'crm: { search: true, prefer: [lead, contact], route_to_responsible: true }' });
    const lead = await rig.crm.findEntity({ phone: CLIENT });
    expect(lead).toMatchObject({ entityType: 'LEAD', entityId: 1201, assignedById: 2, responsibleExtension: '101' });

    rig.emu.entities.splice(0, 1); // without the lead, the contact (user 3, extension 102) wins
    const reg = await rig.crm.registrationCrmParams({ callId: 'c1', direction: 'incoming', phone: CLIENT, userId: 2 });
    expect(reg).toMatchObject({ userId: 3, routed: true, fields: { CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 651 } });
  });

  test('route_to_responsible: a responsible without an extension is not one of ours, the call stays on the agent', async () => {
    rig = await startCrm({ crmYaml: 'crm: { search: true, route_to_responsible: true }', seed: false,
      entities: [{ CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 700, NAME: 'X', ASSIGNED_BY_ID: 1, PHONES: [CLIENT] }] });
    const reg = await rig.crm.registrationCrmParams({ callId: 'c1', direction: 'incoming', phone: CLIENT, userId: 2 });
    expect(reg).toMatchObject({ userId: 2, routed: false, fields: { CRM_ENTITY_ID: 700 } });
  });

  test('get_search_filter decides which found entities count; process_search_params filter goes through crm.item.list', async () => {
    rig = await startCrm({
      crmYaml: 'crm: { search: true }',
      hooks: {
        'get_search_filter.js': `module.exports = (input) => ({ data: { entities: input.params.entities
          .filter((e) => e.CRM_ENTITY_TYPE !== 'CONTACT').map((e) => ({ ...e, ASSIGNED_BY_ID: 4 })) }, state: 'success' });`,
      },
    });
    // The hook drops the contact: the company is next, with the responsible the hook set.
    expect(await rig.crm.findEntity({ phone: CLIENT, callId: 'c1' })).toMatchObject({ entityType: 'COMPANY', entityId: 643, assignedById: 4 });

    // A filter on companies that the company does not pass: only the lead is left.
    const found = await rig.crm.findEntity({ phone: CLIENT, filter: { company: { UF_CRM_DEPARTMENT: 'sales' } } });
    expect(found).toMatchObject({ entityType: 'LEAD', entityId: 1201 });
    expect(rig.sent('crm.item.list').map((r) => r.params)).toEqual([
      { entityTypeId: 4, select: ['id'], filter: { UF_CRM_DEPARTMENT: 'sales', '@id': [643] }, useOriginalUfNames: 'Y' },
    ]);
  });

  test('get_search_filter returning no entities: the number counts as unknown', async () => {
    rig = await startCrm({
      crmYaml: 'crm: { search: true }',
      hooks: { 'get_search_filter.js': `module.exports = () => ({ data: { entities: [] }, state: 'success' });` },
    });
    const reg = await rig.crm.registrationCrmParams({ callId: 'c1', direction: 'incoming', phone: CLIENT, userId: 2 });
    expect(reg).toEqual({ fields: { CRM_CREATE: 1 }, userId: 2, routed: false });
  });

  test('withheld numbers are never searched and never create anything', async () => {
    rig = await startCrm({ crmYaml: 'crm: { search: true, create: { incoming: lead } }' });
    const reg = await rig.crm.registrationCrmParams({ callId: 'c1', direction: 'incoming', phone: 'anonymous', withheld: true, userId: 2 });
    expect(reg).toEqual({ fields: { CRM_CREATE: 0 }, userId: 2, routed: false });
    expect(await rig.crm.findEntity({ phone: 'anonymous' })).toBeUndefined();
    expect(rig.emu.requests.filter((r) => !/^user\.get$/i.test(r.method))).toEqual([]);
  });

  test('defaults: no search, Bitrix24 creates (CRM_CREATE=1), no request at all', async () => {
    rig = await startCrm();
    const reg = await rig.crm.registrationCrmParams({ callId: 'c1', direction: 'incoming', phone: CLIENT, userId: 2 });
    expect(reg).toEqual({ fields: { CRM_CREATE: 1 }, userId: 2, routed: false });
    expect(rig.emu.requests).toEqual([]);
  });
});

describe('unknown caller → entity', () => {
  const UNKNOWN = '+79031112233';
  const CREATION_HOOK = `module.exports = (input) => ({ data: {
    TITLE: 'Звонок с ' + input.params.PHONE[0].VALUE + ' на ' + 'линию',
    PHONE: [{ VALUE: input.params.PHONE[0].VALUE, VALUE_TYPE: 'MOBILE' }],
    UF_CRM_CHANNEL: 'phone',
  }, state: 'success' });`;

  test('create: lead → one crm.item.add shaped by process_entity_creation_params, remembered, linked in register', async () => {
    rig = await startCrm({ crmYaml: 'crm: { search: true, create: { incoming: lead }, source_id: ADVERTISING }', hooks: { 'process_entity_creation_params.js': CREATION_HOOK } });
    const reg = await rig.crm.registrationCrmParams({ callId: 'pbx/1795324160.126', direction: 'incoming', phone: UNKNOWN, userId: 3, did: DID });
    const adds = rig.sent('crm.item.add');
    expect(adds.map((r) => r.params)).toEqual([{
      entityTypeId: 1,
      fields: {
        assignedById: 3, comments: '', opened: 'Y', sourceId: 'ADVERTISING', title: 'Звонок с +79031112233 на линию', UF_CRM_CHANNEL: 'phone',
        fm: [{ typeId: 'PHONE', valueType: 'MOBILE', value: UNKNOWN }],
      },
      useOriginalUfNames: 'Y',
    }]);
    const lead = rig.emu.entities.find((e) => e.PHONES.includes(UNKNOWN));
    expect(lead).toMatchObject({ CRM_ENTITY_TYPE: 'LEAD', ASSIGNED_BY_ID: 3, NAME: 'Звонок с +79031112233 на линию' });
    expect(reg.fields).toEqual({ CRM_CREATE: 0, CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: lead!.CRM_ENTITY_ID });
    expect(rig.crm.createdEntities('pbx/1795324160.126')).toEqual([{ entityType: 'LEAD', entityId: lead!.CRM_ENTITY_ID, via: 'daemon' }]);

    // The outbox retries the register op (or the daemon restarted): the same lead, no second one.
    const again = await rig.restart().registrationCrmParams({ callId: 'pbx/1795324160.126', direction: 'incoming', phone: UNKNOWN, userId: 3, did: DID });
    expect(again.fields).toEqual(reg.fields);
    expect(rig.sent('crm.item.add')).toHaveLength(1);
  });

  test('default title and source without a hook; create: contact names the contact', async () => {
    rig = await startCrm({ crmYaml: 'crm: { create: { outgoing: contact } }' });
    const reg = await rig.crm.registrationCrmParams({ callId: 'c9', direction: 'outgoing', phone: UNKNOWN, userId: 4 });
    expect(rig.sent('crm.item.add').map((r) => r.params)).toEqual([{
      entityTypeId: 3,
      fields: { assignedById: 4, comments: '', opened: 'Y', sourceId: 'CALL', name: 'Outgoing call +79031112233', fm: [{ typeId: 'PHONE', valueType: 'WORK', value: UNKNOWN }] },
      useOriginalUfNames: 'Y',
    }]);
    expect(reg.fields).toMatchObject({ CRM_CREATE: 0, CRM_ENTITY_TYPE: 'CONTACT' });
    // No search was configured, so no search request.
    expect(rig.sent('telephony.externalCall.searchCrmEntities')).toEqual([]);
  });

  test('create: deal → a contact with the number and a deal linked to it; the call links to the contact', async () => {
    rig = await startCrm({ crmYaml: 'crm: { create: { incoming: deal } }' });
    const reg = await rig.crm.registrationCrmParams({ callId: 'c2', direction: 'incoming', phone: UNKNOWN, userId: 2 });
    const [contact, deal] = rig.sent('crm.item.add').map((r) => r.params);
    expect(contact).toMatchObject({ entityTypeId: 3, fields: { name: 'Incoming call +79031112233', assignedById: 2, fm: [{ value: UNKNOWN }] } });
    const contactId = reg.fields.CRM_ENTITY_ID;
    expect(deal).toEqual({
      entityTypeId: 2, useOriginalUfNames: 'Y',
      fields: { title: 'Incoming call +79031112233', assignedById: 2, comments: '', opened: 'Y', sourceId: 'CALL', contactIds: [contactId] },
    });
    expect(reg.entity).toMatchObject({ entityType: 'CONTACT', entityId: contactId, dealId: rig.emu.items[0]!.id, wasCreated: true });
  });

  test('a hook may turn the lead into a contact, or cancel the creation (empty data)', async () => {
    rig = await startCrm({ crmYaml: 'crm: { create: { incoming: lead } }',
      hooks: { 'process_entity_creation_params.js': `module.exports = (i) => i.params.PHONE[0].VALUE.endsWith('0')
        ? { data: {} } : { data: { type: 'contact' }, state: 'success' };` } });
    const contact = await rig.crm.registrationCrmParams({ callId: 'c1', direction: 'incoming', phone: UNKNOWN, userId: 2 });
    expect(contact.fields.CRM_ENTITY_TYPE).toBe('CONTACT');
    const none = await rig.crm.registrationCrmParams({ callId: 'c2', direction: 'incoming', phone: '+79031112230', userId: 2 });
    expect(none).toEqual({ fields: { CRM_CREATE: 0 }, userId: 2, routed: false });
    expect(rig.sent('crm.item.add')).toHaveLength(1);
  });

  test('create: none sends CRM_CREATE=0; Bitrix24-created entities are recorded for the call', async () => {
    rig = await startCrm({ crmYaml: 'crm: { create: { incoming: none } }' });
    expect((await rig.crm.registrationCrmParams({ callId: 'c1', direction: 'incoming', phone: UNKNOWN, userId: 2 })).fields).toEqual({ CRM_CREATE: 0 });
    rig.crm.recordBitrixCreated('c1', [{ entityType: 'LEAD', entityId: 1300 }, { entityType: 'BOGUS', entityId: 1 }]);
    expect(rig.crm.createdEntities('c1')).toEqual([{ entityType: 'LEAD', entityId: 1300, via: 'bitrix' }]);
  });
});
