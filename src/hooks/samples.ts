/**
 * A realistic input for every hook, built from the recorded call `test/fixtures/ami/inbound-answered.jsonl`
 * (+79161234567 calls the main number 74951234567 through trunk `provider`; extension 101 "Ivan Petrov" answers
 * after 3 s, talks 5 s; MixMonitor file of Linkedid 1795324160.126) and, for originate, `click-to-call-answered.jsonl`.
 * Bitrix24 ids (user 7, contact 651, lead 1201) are made up but consistent. `hook sample` prints these, and
 * `hook test` uses them when no input is given.
 */
import type { Conversation, HookInput, HookName, HookParams } from './contract.ts';

const CALL_ID = '1795324160.126';
const BITRIX_CALL_ID = 'externalCall.5c1e2a9f0b7d4e8a9c3b2d1e0f4a6b7c.1795324163';

const conversation: Conversation = {
  id: CALL_ID,
  channel_id: 'PJSIP/101-00000044',
  parent_channel_id: 'PJSIP/provider-00000043',
  from: '+79161234567',
  to: '101',
  from_local: false,
  to_local: true,
  trunk: '74951234567',
  type: 2,
  type_code: 'incoming',
  state: 3,
  state_code: 'hung',
  started_at: '2026-11-22T08:09:20+03:00',
  answered_at: '2026-11-22T08:09:23+03:00',
  ended_at: '2026-11-22T08:09:28+03:00',
  was_answered: true,
};

const ringing: Conversation = { ...conversation, state: 1, state_code: 'ringing', answered_at: '', ended_at: '', was_answered: false };

const SAMPLES: { [H in HookName]: HookParams<H> } = {
  process_phone_number: { phone: '+79161234567' },
  need_registration: {
    call_id: CALL_ID,
    call_stage: 'conversation_requested',
    direction: 'incoming',
    external_number: '+79161234567',
    extension: '101',
    trunk: 'provider',
    did: '74951234567',
    conversation: ringing,
  },
  process_search_params: {
    PHONE_NUMBER: '79161234567',
    TYPE: 2,
    USER_ID: 7,
    LINE_NUMBER: '74951234567',
    CALL_START_DATE: '2026-11-22T08:09:20+03:00',
    CRM_CREATE: 1,
    CRM_SOURCE: 'CALL',
    SHOW: 1,
    conversation: ringing,
    user: { id: 7, extension: '101', name: 'Ivan Petrov' },
  },
  get_search_filter: {
    phone: '79161234567',
    entities: [
      { CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: 1201, ASSIGNED_BY_ID: 7, NAME: 'Входящий звонок +79161234567' },
      { CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 651, ASSIGNED_BY_ID: 7, NAME: 'Сергей Кузнецов' },
      { CRM_ENTITY_TYPE: 'COMPANY', CRM_ENTITY_ID: 643, ASSIGNED_BY_ID: 9, NAME: 'ООО «Ромашка»' },
    ],
  },
  process_registration_params: {
    PHONE_NUMBER: '79161234567',
    TYPE: 2,
    USER_ID: 7,
    USER_PHONE_INNER: '101',
    LINE_NUMBER: '74951234567',
    CALL_START_DATE: '2026-11-22T08:09:20+03:00',
    CRM_CREATE: 1,
    CRM_SOURCE: 'CALL',
    CRM_ENTITY_TYPE: 'CONTACT',
    CRM_ENTITY_ID: 651,
    SHOW: 1,
    EXTERNAL_CALL_ID: CALL_ID,
  },
  process_originate_params: {
    caller_id: '89161234567',
    channel: 'PJSIP/101',
    context: 'from-internal',
    extension: '89161234567',
    priority: '1',
  },
  process_final_params: {
    ADD_TO_CHAT: 1,
    CALL_ID: BITRIX_CALL_ID,
    DURATION: 5,
    STATUS_CODE: '200',
    USER_ID: 7,
    conversation,
    entity_data: { entity_id: 651, entity_type: 'contact', was_created: false },
  },
  process_entity_creation_params: {
    type: 'lead',
    ASSIGNED_BY_ID: 7,
    COMMENTS: '',
    OPENED: 'Y',
    PHONE: [{ VALUE: '79161234567', VALUE_TYPE: 'WORK' }],
    SOURCE_ID: 'CALL',
    TITLE: 'Входящий звонок +79161234567',
  },
  process_task_creation_params: {
    arNewTaskData: {
      TITLE: 'Пропущенный звонок от +79161234567',
      RESPONSIBLE_ID: 7,
      CREATED_BY: 7,
      DEADLINE: '2026-11-22T09:09:28+03:00',
      UF_CRM_TASK: ['C_651'],
    },
  },
  process_record_file_path: {
    call_id: CALL_ID,
    from: '+79161234567',
    to: '101',
    path: '/var/spool/asterisk/monitor/2026/11/22/1795324160.126.wav',
  },
  get_updated_entity_fields: {
    id: CALL_ID,
    from: '+79161234567',
    to: '74951234567',
    from_local: false,
    to_local: true,
    trunk: '74951234567',
    type: 2,
    state: 3,
    started_at: conversation.started_at,
    answered_at: conversation.answered_at,
    ended_at: conversation.ended_at,
    conversations: { [CALL_ID]: conversation },
    entity_data: { entity_id: 1201, entity_type: 'lead', was_created: true },
  },
  get_updated_activity_fields: { ...conversation, activity_id: 30415 },
};

/** A deep copy (callers may edit it). */
export function sampleInput<H extends HookName>(hook: H): HookInput<H> {
  return { params: structuredClone(SAMPLES[hook]) } as HookInput<H>;
}
