/**
 * JSON Schemas of every hook's input (`{"params": ...}`) and output (`{"data": ..., "state": ...}`), mirroring the
 * types in contract.ts. Inputs are lenient (extra fields allowed: the daemon may add facts later without breaking
 * scripts); outputs are typed where the daemon uses the value, so a mistake is reported with the field's name.
 */
import { HOOK_ACTIONS, type HookName } from './contract.ts';

type Schema = Record<string, unknown>;

const str: Schema = { type: 'string' };
const bool: Schema = { type: 'boolean' };
const loose: Schema = { type: ['integer', 'string'] };
const flag: Schema = { enum: [0, 1, '0', '1'] };
const obj = (properties: Record<string, Schema>, required: string[] = [], additionalProperties: boolean | Schema = true): Schema =>
  ({ type: 'object', properties, required, additionalProperties });

const conversation = obj({
  id: str, channel_id: str, parent_channel_id: str, from: str, to: str, from_local: bool, to_local: bool, trunk: str,
  type: { enum: [1, 2, 3] }, type_code: { enum: ['internal', 'incoming', 'outgoing'] }, state: { enum: [1, 2, 3] },
  state_code: str, started_at: str, answered_at: str, ended_at: str, was_answered: bool,
}, ['id', 'from', 'to', 'type']);

const entityData = obj({
  entity_id: loose, entity_type: { enum: ['lead', 'contact', 'company', 'deal'] }, was_created: bool,
}, ['entity_id', 'entity_type']);

const registerFields: Record<string, Schema> = {
  PHONE_NUMBER: str, TYPE: { enum: [1, 2, 3, 4, 5, '1', '2', '3', '4', '5'] }, USER_ID: loose, USER_PHONE_INNER: str,
  LINE_NUMBER: str, CALL_START_DATE: str, CRM_CREATE: flag, CRM_SOURCE: str,
  CRM_ENTITY_TYPE: { enum: ['LEAD', 'CONTACT', 'COMPANY'] }, CRM_ENTITY_ID: loose, SHOW: flag, ADD_TO_CHAT: flag,
  EXTERNAL_CALL_ID: str, CALL_LIST_ID: loose,
};

const finishFields: Record<string, Schema> = {
  CALL_ID: str, USER_ID: loose, DURATION: loose, STATUS_CODE: loose, ADD_TO_CHAT: flag, COST: { type: ['number', 'string'] },
  COST_CURRENCY: str, FAILED_REASON: str, RECORD_URL: str, VOTE: loose,
};

const originateFields: Record<string, Schema> = {
  caller_id: str, channel: str, context: str, extension: str, priority: loose, codecs: str,
  variable: { anyOf: [str, { type: 'object', additionalProperties: str }] },
};

const crmEntity = obj({
  CRM_ENTITY_TYPE: { enum: ['LEAD', 'CONTACT', 'COMPANY'] }, CRM_ENTITY_ID: loose, ASSIGNED_BY_ID: loose, NAME: str,
}, ['CRM_ENTITY_TYPE', 'CRM_ENTITY_ID']);

const entityCreation: Record<string, Schema> = {
  type: { enum: ['lead', 'contact', 'deal'] }, TITLE: str, ASSIGNED_BY_ID: loose, SOURCE_ID: str, OPENED: { enum: ['Y', 'N'] },
  COMMENTS: str, PHONE: { type: 'array', items: obj({ VALUE: str, VALUE_TYPE: str }, ['VALUE']) },
};

const taskFields: Record<string, Schema> = {
  TITLE: str, RESPONSIBLE_ID: loose, CREATED_BY: loose, DEADLINE: str, DESCRIPTION: str,
  UF_CRM_TASK: { type: 'array', items: { type: 'string', pattern: '^(L|C|CO|D)_\\d+$' } },
};

const searchFilter = obj({ lead: { type: 'object' }, contact: { type: 'object' }, company: { type: 'object' } }, [], false);

/** `params` schemas. */
const PARAMS: Record<HookName, Schema> = {
  process_phone_number: obj({ phone: str }, ['phone']),
  need_registration: obj({
    call_id: str,
    call_stage: { enum: ['conversation_requested', 'conversation_accepted', 'conversation_ended', 'call_ended'] },
    direction: { enum: ['incoming', 'outgoing', 'internal'] },
    external_number: str, extension: str, trunk: str, did: str, conversation,
  }, ['call_id', 'call_stage', 'direction', 'external_number', 'extension', 'trunk', 'did']),
  process_search_params: obj({ ...registerFields, conversation, call: conversation, user: { type: 'object' } }, ['PHONE_NUMBER', 'TYPE']),
  get_search_filter: obj({ phone: str, entities: { type: 'array', items: crmEntity } }, ['phone', 'entities']),
  process_registration_params: obj(registerFields, ['PHONE_NUMBER', 'TYPE']),
  process_originate_params: obj(originateFields, ['caller_id', 'channel', 'context', 'extension', 'priority']),
  process_final_params: obj({ ...finishFields, conversation, entity_data: entityData }, ['CALL_ID', 'USER_ID', 'DURATION', 'STATUS_CODE', 'conversation']),
  process_entity_creation_params: obj(entityCreation, ['type']),
  process_task_creation_params: obj({ arNewTaskData: obj(taskFields, ['TITLE', 'RESPONSIBLE_ID']) }, ['arNewTaskData']),
  process_record_file_path: obj({ call_id: str, from: str, to: str, path: str }, ['call_id', 'from', 'to', 'path']),
  get_updated_entity_fields: obj({
    id: str, from: str, to: str, from_local: bool, to_local: bool, trunk: str, type: { enum: [1, 2, 3] }, state: { enum: [1, 2, 3] },
    started_at: str, answered_at: str, ended_at: str, conversations: { type: 'object', additionalProperties: conversation },
    entity_data: entityData,
  }, ['id', 'conversations']),
  get_updated_activity_fields: { allOf: [conversation, obj({ activity_id: loose })] },
};

/**
 * `data` schemas (used once empty data has been ruled out). Hooks whose data is merged over their params accept
 * partial data; a field returned as null is a removal, hence the `null` alternatives.
 */
const orNull = (fields: Record<string, Schema>): Record<string, Schema> =>
  Object.fromEntries(Object.entries(fields).map(([k, s]) => [k, { anyOf: [s, { type: 'null' }] }]));

const DATA: Record<HookName, Schema> = {
  process_phone_number: obj({ phone: str }, ['phone']),
  need_registration: obj({ need_registration: bool }, ['need_registration'], false),
  process_search_params: obj(orNull(registerFields)),
  get_search_filter: obj({ entities: { type: 'array', items: crmEntity } }, ['entities'], false),
  process_registration_params: obj(orNull(registerFields)),
  process_originate_params: obj(orNull(originateFields), [], false),
  process_final_params: obj(orNull(finishFields)),
  process_entity_creation_params: obj(orNull(entityCreation)),
  process_task_creation_params: obj({ arNewTaskData: obj(orNull(taskFields)) }, ['arNewTaskData'], false),
  process_record_file_path: obj({ path: { type: 'string', minLength: 1 } }, ['path']),
  get_updated_entity_fields: { type: 'object' },
  get_updated_activity_fields: { type: 'object' },
};

export function inputSchema(hook: HookName): Schema {
  return obj({ params: PARAMS[hook] }, ['params'], false);
}

/** The whole answer: `data` plus `state`, and `action` / `filter` only on the hooks that have them. */
export function outputSchema(hook: HookName): Schema {
  const properties: Record<string, Schema> = {
    data: DATA[hook],
    state: { enum: ['success', 'error'] },
    /** With state "error": why (logged). */
    message: str,
  };
  const actions = HOOK_ACTIONS[hook];
  if (actions) properties['action'] = { enum: [...actions] };
  if (hook === 'process_search_params') properties['filter'] = searchFilter;
  return obj(properties, ['data'], false);
}
