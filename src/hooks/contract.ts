/**
 * The customization contract: the closed list of hook points and the JSON each one gets and returns.
 *
 * It keeps the Itgrix bx24asterisk (pre-2.15) contract so existing customizations port: a hook gets
 * `{"params": {...}}` and answers `{"data": {...}, "state": "success"}`, plus `action` / `filter` where the hook
 * has them. Empty `data` (`{}`, `[]`, `null`) cancels the CRM request the hook precedes. Field names are the
 * Itgrix ones (snake_case call facts, Bitrix24 UPPER_SNAKE request fields), because that is what ported scripts read.
 */
export { sampleInput } from './samples.ts';

export const HOOK_NAMES = [
  'process_phone_number',
  'need_registration',
  'process_search_params',
  'get_search_filter',
  'process_registration_params',
  'process_originate_params',
  'process_final_params',
  'process_entity_creation_params',
  'process_task_creation_params',
  'process_record_file_path',
  'get_updated_entity_fields',
  'get_updated_activity_fields',
] as const;

export type HookName = (typeof HOOK_NAMES)[number];

/** Old file names still accepted (Itgrix renamed get_updated_lead_fields in 2.15). */
export const LEGACY_HOOK_NAMES: Readonly<Record<string, HookName>> = {
  get_updated_lead_fields: 'get_updated_entity_fields',
};

export function isHookName(name: string): name is HookName {
  return (HOOK_NAMES as readonly string[]).includes(name);
}

/** A hook name or a legacy alias → the hook; undefined for anything else. */
export function resolveHookName(name: string): HookName | undefined {
  return isHookName(name) ? name : LEGACY_HOOK_NAMES[name];
}

// ---------------------------------------------------------------------------------------------------------------
// Shared shapes

/** Bitrix24 numeric flags arrive as numbers from us; ported PHP scripts often return them as strings. */
export type Loose = number | string;

/**
 * One conversation (or the whole call) as Itgrix described it. Times are ISO 8601 with offset, '' while unknown.
 * `type`: 1 internal, 2 incoming, 3 outgoing. `state`: 1 ringing, 2 talking, 3 hung (`state_code` names it).
 */
export interface Conversation {
  id: string;
  channel_id: string;
  parent_channel_id: string;
  from: string;
  to: string;
  from_local: boolean;
  to_local: boolean;
  trunk: string;
  type: 1 | 2 | 3;
  type_code: 'internal' | 'incoming' | 'outgoing';
  state: 1 | 2 | 3;
  state_code: 'ringing' | 'talking' | 'hung';
  started_at: string;
  answered_at: string;
  ended_at: string;
  was_answered: boolean;
}

/** The Bitrix24 user the call is registered for (when known). */
export interface CallUser {
  id: number;
  extension: string;
  name?: string;
}

/** The CRM entity a registration ended up with. */
export interface EntityData {
  entity_id: number;
  /** `deal` only for the deals the daemon creates (crm.create: deal); Itgrix knew lead, contact, company. */
  entity_type: 'lead' | 'contact' | 'company' | 'deal';
  /** True when the daemon (Bitrix24 auto-creation) created it for this call. */
  was_created: boolean;
}

/** telephony.externalCall.register fields (Bitrix24 REST names). */
export interface RegisterFields {
  PHONE_NUMBER: string;
  /** 1 outgoing, 2 incoming, 3 incoming with redirection, 4 callback. */
  TYPE: Loose;
  USER_ID?: Loose;
  USER_PHONE_INNER?: string;
  LINE_NUMBER?: string;
  /** ISO 8601 with offset. */
  CALL_START_DATE?: string;
  CRM_CREATE?: Loose;
  CRM_SOURCE?: string;
  CRM_ENTITY_TYPE?: 'LEAD' | 'CONTACT' | 'COMPANY';
  CRM_ENTITY_ID?: Loose;
  SHOW?: Loose;
  ADD_TO_CHAT?: Loose;
  EXTERNAL_CALL_ID?: string;
  [field: string]: unknown;
}

/** `filter` of process_search_params: Bitrix24 list filters per entity type (Itgrix semantics). */
export interface SearchFilter {
  lead?: Record<string, unknown>;
  contact?: Record<string, unknown>;
  company?: Record<string, unknown>;
}

/** One item of telephony.externalCall.searchCrmEntities. */
export interface CrmEntity {
  CRM_ENTITY_TYPE: 'LEAD' | 'CONTACT' | 'COMPANY';
  CRM_ENTITY_ID: Loose;
  ASSIGNED_BY_ID?: Loose;
  NAME?: string;
  [field: string]: unknown;
}

/** telephony.externalCall.finish fields. */
export interface FinishFields {
  CALL_ID: string;
  USER_ID: Loose;
  DURATION: Loose;
  STATUS_CODE: Loose;
  ADD_TO_CHAT?: Loose;
  COST?: Loose;
  COST_CURRENCY?: string;
  FAILED_REASON?: string;
  RECORD_URL?: string;
  VOTE?: Loose;
  [field: string]: unknown;
}

export interface OriginateFields {
  caller_id: string;
  channel: string;
  context: string;
  extension: string;
  priority: Loose;
  codecs?: string;
  /** AMI Variable: `"A=1,B=2"` or an object of name → value. */
  variable?: string | Record<string, string>;
}

export interface EntityCreationFields {
  /** What to create. A hook may change it (e.g. contacts instead of leads). */
  type: 'lead' | 'contact' | 'deal';
  TITLE?: string;
  ASSIGNED_BY_ID?: Loose;
  SOURCE_ID?: string;
  OPENED?: 'Y' | 'N';
  COMMENTS?: string;
  PHONE?: Array<{ VALUE: string; VALUE_TYPE?: string }>;
  [field: string]: unknown;
}

export interface TaskFields {
  TITLE: string;
  RESPONSIBLE_ID: Loose;
  CREATED_BY?: Loose;
  /** ISO 8601 with offset. */
  DEADLINE?: string;
  DESCRIPTION?: string;
  /** Links to CRM: `L_11201` (lead), `C_` contact, `CO_` company, `D_` deal. */
  UF_CRM_TASK?: string[];
  [field: string]: unknown;
}

export type CallStage = 'conversation_requested' | 'conversation_accepted' | 'conversation_ended' | 'call_ended';

// ---------------------------------------------------------------------------------------------------------------
// Per-hook params (what `params` holds) and data (what `data` must hold)

export interface NeedRegistrationParams {
  call_id: string;
  call_stage: CallStage;
  direction: 'incoming' | 'outgoing' | 'internal';
  /** The client's number as presented or dialled ('' when withheld). */
  external_number: string;
  /** The extension the registration is for ('' when none yet). */
  extension: string;
  trunk: string;
  /** The called office number of an inbound call ('' otherwise). */
  did: string;
  conversation?: Conversation;
}

export interface SearchParams extends RegisterFields {
  conversation?: Conversation;
  /** Present instead of `conversation` once a conversation exists (Itgrix naming). */
  call?: Conversation;
  user?: CallUser | Record<string, never>;
}

export interface FinalParams extends FinishFields {
  conversation: Conversation;
  entity_data?: EntityData;
}

/** The whole call (the seed's `get_updated_lead_fields` input): the call-level conversation fields plus every conversation. */
export interface UpdatedEntityParams extends Pick<Conversation,
  'id' | 'from' | 'to' | 'from_local' | 'to_local' | 'trunk' | 'type' | 'state' | 'started_at' | 'answered_at' | 'ended_at'> {
  /** Every conversation of the call, by conversation id. */
  conversations: Record<string, Conversation>;
  entity_data?: EntityData;
}

export interface UpdatedActivityParams extends Conversation {
  activity_id?: number;
}

/** A field map returned as-is (Bitrix24 field name → value). */
export type FieldMap = Record<string, unknown>;

export interface HookContract {
  process_phone_number: { params: { phone: string }; data: { phone: string }; action: never };
  need_registration: { params: NeedRegistrationParams; data: { need_registration: boolean }; action: never };
  process_search_params: { params: SearchParams; data: RegisterFields; action: 'ignore' | 'register' };
  get_search_filter: { params: { phone: string; entities: CrmEntity[] }; data: { entities: CrmEntity[] }; action: never };
  process_registration_params: { params: RegisterFields; data: RegisterFields; action: never };
  process_originate_params: { params: OriginateFields; data: OriginateFields; action: never };
  process_final_params: { params: FinalParams; data: FinishFields; action: 'delete' | 'register' };
  process_entity_creation_params: { params: EntityCreationFields; data: EntityCreationFields; action: never };
  process_task_creation_params: { params: { arNewTaskData: TaskFields }; data: { arNewTaskData: TaskFields }; action: never };
  process_record_file_path: {
    params: { call_id: string; from: string; to: string; path: string };
    data: { path: string };
    action: never;
  };
  get_updated_entity_fields: { params: UpdatedEntityParams; data: FieldMap; action: never };
  get_updated_activity_fields: { params: UpdatedActivityParams; data: FieldMap; action: never };
}

export type HookParams<H extends HookName> = HookContract[H]['params'];
export type HookData<H extends HookName> = HookContract[H]['data'];
export type HookAction<H extends HookName> = HookContract[H]['action'];
export type HookInput<H extends HookName> = { params: HookParams<H> };

/**
 * What a run produced. `ok.data` is ready to use: for the hooks that change request params (MERGED_HOOKS) it is
 * the input params with the returned fields laid over them (context keys such as `conversation` removed, a field
 * returned as null removed), so a script may return only what it changes.
 */
export type HookOutcome<H extends HookName> =
  | { status: 'absent' }
  | { status: 'ok'; data: HookData<H>; action?: HookAction<H>; filter?: SearchFilter; ms: number }
  | { status: 'cancelled'; ms: number }
  | { status: 'error'; error: string; ms: number };

/**
 * Hooks whose `data` is laid over their params, and the params keys that are call context (input only).
 * process_task_creation_params merges inside `arNewTaskData`.
 */
export const MERGED_HOOKS: Readonly<Partial<Record<HookName, readonly string[]>>> = {
  process_search_params: ['conversation', 'call', 'user'],
  process_registration_params: [],
  process_originate_params: [],
  process_final_params: ['conversation', 'entity_data'],
  process_entity_creation_params: [],
  process_task_creation_params: [],
};

/** The `action` values a hook may return (absent: the hook has no `action`). */
export const HOOK_ACTIONS: Readonly<Partial<Record<HookName, readonly string[]>>> = {
  process_search_params: ['ignore', 'register'],
  process_final_params: ['delete', 'register'],
};
