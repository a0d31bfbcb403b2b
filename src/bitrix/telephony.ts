import type { BitrixClient } from './client.ts';
import { BitrixError } from './errors.ts';

/**
 * Typed wrappers for telephony.externalCall.* (api-reference/telephony/*). The `*Wire` builders produce the
 * exact UPPER_SNAKE params so that the same params can go into a batch (where `callId` may be a
 * `$result[reg][CALL_ID]` reference); the `parse*` functions map replies back to camelCase.
 */
/** What the telephony wrappers need of a client: the real one, or the dry-run one `replay` uses. */
export type RestCaller = Pick<BitrixClient, 'call' | 'upload'>;

export const TELEPHONY_METHODS = {
  register: 'telephony.externalCall.register',
  show: 'telephony.externalCall.show',
  hide: 'telephony.externalCall.hide',
  finish: 'telephony.externalCall.finish',
  attachRecord: 'telephony.externalCall.attachRecord',
  searchCrmEntities: 'telephony.externalCall.searchCrmEntities',
} as const;

/** 1 outgoing, 2 incoming, 3 incoming with redirect, 4 callback, 5 informational. */
export type CallType = 1 | 2 | 3 | 4 | 5;

export interface RegisterCallParams {
  userId?: number;
  userPhoneInner?: string;
  phoneNumber: string;
  type: CallType;
  /** ISO-8601 with a zone, e.g. 2026-03-07T10:20:30+03:00. */
  callStartDate: string;
  crmCreate?: 0 | 1;
  crmSource?: string;
  crmEntityType?: string;
  crmEntityId?: number;
  show?: 0 | 1;
  lineNumber?: string;
  /** Unique per physical call: without it Bitrix24 may hand back a CALL_ID registered in the last 30 minutes. */
  externalCallId?: string;
  addToChat?: 0 | 1;
}

export interface RegisterCallResult {
  callId: string;
  crmCreatedLead?: number;
  crmCreatedEntities: Array<{ entityType: string; entityId: number }>;
  crmEntityType?: string;
  crmEntityId?: number;
  leadCreationError?: string;
}

export function registerCallWire(p: RegisterCallParams): Record<string, unknown> {
  return compact({
    USER_ID: p.userId,
    USER_PHONE_INNER: p.userPhoneInner,
    PHONE_NUMBER: p.phoneNumber,
    TYPE: p.type,
    CALL_START_DATE: p.callStartDate,
    CRM_CREATE: p.crmCreate,
    CRM_SOURCE: p.crmSource,
    CRM_ENTITY_TYPE: p.crmEntityType,
    CRM_ENTITY_ID: p.crmEntityId,
    SHOW: p.show,
    LINE_NUMBER: p.lineNumber,
    EXTERNAL_CALL_ID: p.externalCallId,
    ADD_TO_CHAT: p.addToChat,
  });
}

export function parseRegisterResult(raw: unknown): RegisterCallResult {
  const r = object(raw, TELEPHONY_METHODS.register);
  if (typeof r.CALL_ID !== 'string' || !r.CALL_ID) throw unexpected(TELEPHONY_METHODS.register, 'no CALL_ID in the reply');
  const out: RegisterCallResult = {
    callId: r.CALL_ID,
    crmCreatedEntities: (Array.isArray(r.CRM_CREATED_ENTITIES) ? r.CRM_CREATED_ENTITIES : []).map((e: Record<string, unknown>) => ({
      entityType: String(e.ENTITY_TYPE), entityId: Number(e.ENTITY_ID),
    })),
  };
  const lead = optNumber(r.CRM_CREATED_LEAD);
  if (lead !== undefined) out.crmCreatedLead = lead;
  if (typeof r.CRM_ENTITY_TYPE === 'string' && r.CRM_ENTITY_TYPE) out.crmEntityType = r.CRM_ENTITY_TYPE;
  const entityId = optNumber(r.CRM_ENTITY_ID);
  if (entityId !== undefined) out.crmEntityId = entityId;
  if (typeof r.LEAD_CREATION_ERROR === 'string' && r.LEAD_CREATION_ERROR) out.leadCreationError = r.LEAD_CREATION_ERROR;
  return out;
}

export async function registerCall(client: BitrixClient, p: RegisterCallParams): Promise<RegisterCallResult> {
  const res = await client.call(TELEPHONY_METHODS.register, registerCallWire(p));
  return parseRegisterResult(res.result);
}

/** USER_ID may be one id or an array (show/hide docs). */
export function showHideWire(callId: string, userIds: number[]): Record<string, unknown> {
  return { CALL_ID: callId, USER_ID: userIds.length === 1 ? userIds[0] : userIds };
}

/** Shows the call card; false when Bitrix24 no longer knows the call. */
export async function showCall(client: BitrixClient, callId: string, userIds: number[]): Promise<boolean> {
  const res = await client.call(TELEPHONY_METHODS.show, showHideWire(callId, userIds));
  return res.result === true;
}

export async function hideCall(client: BitrixClient, callId: string, userIds: number[]): Promise<boolean> {
  const res = await client.call(TELEPHONY_METHODS.hide, showHideWire(callId, userIds));
  return res.result === true;
}

export interface FinishCallParams {
  callId: string;
  userId?: number;
  userPhoneInner?: string;
  /** Seconds of conversation. */
  duration: number;
  /** '200', '304', '603-S', ... (Bitrix24 defaults to 200 if duration > 0, else 304). */
  statusCode?: string;
  failedReason?: string;
  addToChat?: 0 | 1;
  cost?: number;
  costCurrency?: string;
  vote?: 1 | 2 | 3 | 4 | 5;
}

export interface FinishCallResult {
  crmActivityId?: number;
  /** 1 = successful conversation, 0 = missed/failed. */
  callStatus?: number;
  callFailedCode?: string;
  externalCallId?: string;
}

export function finishCallWire(p: FinishCallParams): Record<string, unknown> {
  return compact({
    CALL_ID: p.callId,
    USER_ID: p.userId,
    USER_PHONE_INNER: p.userPhoneInner,
    DURATION: Math.max(0, Math.round(p.duration)),
    STATUS_CODE: p.statusCode,
    FAILED_REASON: p.failedReason,
    ADD_TO_CHAT: p.addToChat,
    COST: p.cost,
    COST_CURRENCY: p.costCurrency,
    VOTE: p.vote,
  });
}

export function parseFinishResult(raw: unknown): FinishCallResult {
  const r = object(raw, TELEPHONY_METHODS.finish);
  const out: FinishCallResult = {};
  const activity = optNumber(r.CRM_ACTIVITY_ID);
  if (activity !== undefined) out.crmActivityId = activity;
  const status = optNumber(r.CALL_STATUS);
  if (status !== undefined) out.callStatus = status;
  if (r.CALL_FAILED_CODE !== undefined && r.CALL_FAILED_CODE !== null) out.callFailedCode = String(r.CALL_FAILED_CODE);
  if (typeof r.EXTERNAL_CALL_ID === 'string' && r.EXTERNAL_CALL_ID) out.externalCallId = r.EXTERNAL_CALL_ID;
  return out;
}

export async function finishCall(client: BitrixClient, p: FinishCallParams): Promise<FinishCallResult> {
  const res = await client.call(TELEPHONY_METHODS.finish, finishCallWire(p));
  return parseFinishResult(res.result);
}

export interface AttachRecordParams {
  callId: string;
  /** .mp3 or .wav only. */
  filename: string;
  fileContentBase64?: string;
  /** Bitrix24 downloads it itself (it must be public: private addresses are refused). */
  recordUrl?: string;
}

export interface AttachRecordResult {
  fileId?: number;
  /** Set when only FILENAME was sent: POST the file there as multipart field `fieldName`. */
  uploadUrl?: string;
  fieldName?: string;
}

export function attachRecordWire(p: AttachRecordParams): Record<string, unknown> {
  return compact({ CALL_ID: p.callId, FILENAME: p.filename, FILE_CONTENT: p.fileContentBase64, RECORD_URL: p.recordUrl });
}

export function parseAttachRecordResult(raw: unknown): AttachRecordResult {
  const r = object(raw, TELEPHONY_METHODS.attachRecord);
  const out: AttachRecordResult = {};
  const fileId = optNumber(r.FILE_ID);
  if (fileId !== undefined) out.fileId = fileId;
  if (typeof r.uploadUrl === 'string') out.uploadUrl = r.uploadUrl;
  if (typeof r.fieldName === 'string') out.fieldName = r.fieldName;
  return out;
}

/** Must be called after finish (otherwise Bitrix24: "Call is not found in the statistic table"). */
export async function attachRecord(client: RestCaller, p: AttachRecordParams): Promise<AttachRecordResult> {
  const res = await client.call(TELEPHONY_METHODS.attachRecord, attachRecordWire(p));
  return parseAttachRecordResult(res.result);
}

/** Base64 grows a file by a third inside a JSON body; above this size the two-step upload is used. */
export const DEFAULT_INLINE_RECORD_MAX_BYTES = 5 * 1024 * 1024;

/**
 * Attaches a recording's bytes: inline (FILE_CONTENT) when small, otherwise attachRecord with FILENAME only
 * and a multipart POST to the returned uploadUrl.
 */
export async function uploadRecord(client: RestCaller, p: {
  callId: string; filename: string; content: Uint8Array; inlineMaxBytes?: number;
}): Promise<{ fileId?: number; via: 'inline' | 'uploadUrl' }> {
  if (p.content.byteLength <= (p.inlineMaxBytes ?? DEFAULT_INLINE_RECORD_MAX_BYTES)) {
    const res = await attachRecord(client, {
      callId: p.callId, filename: p.filename, fileContentBase64: Buffer.from(p.content).toString('base64'),
    });
    return res.fileId !== undefined ? { fileId: res.fileId, via: 'inline' } : { via: 'inline' };
  }
  const step1 = await attachRecord(client, { callId: p.callId, filename: p.filename });
  if (!step1.uploadUrl) throw unexpected(TELEPHONY_METHODS.attachRecord, 'no uploadUrl for a FILENAME-only request');
  const uploaded = await client.upload(step1.uploadUrl, step1.fieldName ?? 'file', p.filename, p.content);
  const fileId = optNumber((uploaded.result as Record<string, unknown> | null)?.FILE_ID);
  return fileId !== undefined ? { fileId, via: 'uploadUrl' } : { via: 'uploadUrl' };
}

function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

function object(raw: unknown, method: string): Record<string, any> {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw unexpected(method, 'the result is not an object');
  return raw as Record<string, any>;
}

function optNumber(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function unexpected(method: string, why: string): BitrixError {
  return new BitrixError({ method, bitrixCode: 'ERROR_UNEXPECTED_ANSWER', kind: 'permanent', retryable: false },
    `Bitrix24 ${method}: unexpected reply, ${why}`);
}
