/**
 * Turns queued call intents into Bitrix24 requests: runs the customization hooks that govern each request,
 * maps extensions to users, normalises numbers, and sends. It is the outbox's handler, so it runs once per
 * attempt: a retryable failure (network, 5xx, limits, a recording still being written) is thrown back to the
 * outbox to retry later; a permanent one dead-letters the op. Ops of one call arrive strictly in order, and the
 * register's CALL_ID reaches show/hide/finish/attachRecord through `prior`.
 *
 * Decisions (README "What appears in Bitrix24"):
 * - register is sent with SHOW=0: the cards are driven by explicit show/hide with USER_ID arrays, so every ringing
 *   agent sees the card and the others lose it on answer.
 * - EXTERNAL_CALL_ID = <pbx>-<linkedid>-<registration>: unique per physical call, so Bitrix24's 30-minute
 *   "same number, same user" re-register rule can never merge two calls.
 * - A withheld number is registered as "anonymous" with CRM_CREATE=0 and no entity.
 * - process_final_params `action: delete` leaves the call unfinished (Bitrix24 has no delete for external calls)
 *   and logs it; empty `data` from any hook cancels that one request ("cancelled by customization").
 */
import { stat, readFile } from 'node:fs/promises';
import { basename, join, relative, isAbsolute } from 'node:path';
import { BitrixError } from '../bitrix/errors.ts';
import {
  TELEPHONY_METHODS, type RestCaller, finishCallWire, parseRegisterResult, registerCallWire, showHideWire, uploadRecord,
} from '../bitrix/telephony.ts';
import type { Intent, RegisterIntent } from '../calls/intents.ts';
import type { HookName, HookOutcome, HookParams } from '../hooks/contract.ts';
import type { Logger } from '../log/logger.ts';
import type { CallFacts } from './call-facts.ts';
import { isoWithOffset } from './iso-time.ts';
import { normalizePhone } from './phone.ts';
import type { CallEntity, CrmService } from '../crm/crm-service.ts';

/** Extension → Bitrix24 user id (UserDirectory in the daemon; a fixed map in `replay`). */
export interface UserLookup {
  userFor(extension: string | undefined): Promise<number | undefined>;
}

/** What the outbox stores for each op. */
export interface IntentOp {
  pbx: string;
  intent: Intent;
  facts: CallFacts;
  /** When the intent was queued (epoch ms): bounds how long a recording may take to appear. */
  queuedAt: number;
}

/** The slice of the hook runner the dispatcher needs (src/hooks HookRunner implements it). */
export interface HookRunnerLike {
  run<H extends HookName>(hook: H, params: HookParams<H>, ctx?: { callId?: string }): Promise<HookOutcome<H>>;
}

export const NO_HOOKS: HookRunnerLike = { run: async () => ({ status: 'absent' }) };

export interface DispatcherOptions {
  client: RestCaller;
  users: UserLookup;
  hooks: HookRunnerLike;
  log: Logger;
  defaultUserId: number;
  crmCreate: boolean;
  crmSource?: string;
  addToChat: boolean;
  defaultCountry: string;
  timezone: string;
  recordings: { pbxDir: string; localDir: string; attach: boolean; readyTimeoutMs: number; uploadThresholdBytes: number };
  now?: () => number;
  /** `replay`: recordings are not read from disk; attachRecord names the file it would attach. */
  dryRun?: boolean;
  /** The CRM side (search, creation, missed-call tasks, end-of-call updates); absent in `replay`. */
  crm?: CrmService;
}

/** What each op resolved to; stored by the outbox, read by later ops of the call through `prior`. */
export type DispatchResult =
  | { sent: true; callId?: string; detail?: unknown; userId?: number }
  | { sent: false; skipped: string };

type Prior = ReadonlyMap<string, { status: 'done' | 'dead'; result: unknown }>;

const WITHHELD_NUMBER = 'anonymous';
const AUTH_RETRY_MS = 60_000;
/** A WAV of this size is only its header: MixMonitor ran (option b) but the call was never bridged. */
const EMPTY_WAV_BYTES = 44;

export function opKey(pbx: string, intent: Intent, seq: number): string {
  const base = `${pbx}/${intent.callKey}/${intent.regId}`;
  return intent.kind === 'register' ? `register/${base}` : `${intent.kind}/${base}/${seq}`;
}

/**
 * Outbox merger: consecutive show (or hide) requests of the same registration become one request with the union
 * of the extensions — a ring-all queue's members get the card in one `show` with a USER_ID array.
 */
export function mergeCardOps(head: { payload: unknown }, next: { payload: unknown }): IntentOp | undefined {
  const a = head.payload as Partial<IntentOp>;
  const b = next.payload as Partial<IntentOp>;
  if (!a.intent || !b.intent || !a.facts) return undefined;
  if ((a.intent.kind !== 'show' && a.intent.kind !== 'hide') || b.intent.kind !== a.intent.kind) return undefined;
  if (a.intent.regId !== b.intent.regId || a.intent.callKey !== b.intent.callKey || a.pbx !== b.pbx) return undefined;
  return { ...(a as IntentOp), intent: { ...a.intent, extensions: [...new Set([...a.intent.extensions, ...b.intent.extensions])] } };
}

export class Dispatcher {
  readonly #o: DispatcherOptions;
  readonly #log: Logger;
  readonly #now: () => number;

  constructor(options: DispatcherOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: 'dispatch' });
    this.#now = options.now ?? Date.now;
  }

  /**
   * The outbox handler. A credentials problem (webhook revoked, OAuth app not installed yet or its refresh refused)
   * is the admin's to fix, and the calls must survive until then: it is retried every minute instead of being
   * dead-lettered, with one E_BITRIX_AUTH line per attempt saying what to do.
   */
  handle = async (payload: IntentOp, prior: Prior): Promise<DispatchResult> => {
    try {
      return await this.#dispatch(payload, prior);
    } catch (err) {
      if (err instanceof BitrixError && err.kind === 'auth') {
        this.#log.error(`${err.message} — the request waits and is retried every minute`, { code: 'E_BITRIX_AUTH', callId: payload.facts.call_id });
        throw new BitrixError({ method: err.method, kind: 'auth', retryable: true, retryAfterMs: AUTH_RETRY_MS }, err.message);
      }
      throw err;
    }
  };

  async #dispatch(payload: IntentOp, prior: Prior): Promise<DispatchResult> {
    const { intent } = payload;
    if (intent.kind === 'register') return this.#register(payload, intent);
    if (intent.kind === 'callEnded') return this.#callEnded(payload, intent, prior);
    const callId = this.#callIdFor(payload, prior);
    if (!callId) return { sent: false, skipped: `registration ${intent.regId} was not sent` };
    switch (intent.kind) {
      case 'show':
      case 'hide': return this.#card(payload, intent.kind, intent.extensions, callId);
      case 'finish': return this.#finish(payload, intent, callId);
      case 'attachRecord': return this.#attach(payload, intent.paths, callId);
    }
  }

  #callIdFor(payload: IntentOp, prior: Prior): string | undefined {
    const entry = prior.get(opKey(payload.pbx, { ...payload.intent, kind: 'register' } as RegisterIntent, 0));
    if (entry?.status === 'dead') {
      // Dead-lettered with it, so that retrying the register (outbox retry) replays the rest in order.
      throw new BitrixError({ method: payload.intent.kind, kind: 'permanent', retryable: false },
        `registration ${payload.intent.regId} of ${payload.intent.callKey} was dead-lettered; this request waits with it`);
    }
    if (!entry || entry.status !== 'done') return undefined;
    const result = entry.result as DispatchResult | undefined;
    return result && result.sent ? result.callId : undefined;
  }

  #ctx(payload: IntentOp): { callId: string } {
    return { callId: `${payload.pbx}/${payload.intent.callKey}` };
  }

  /**
   * Runs a hook. The runner itself logs failures (E_HOOK, naming hook, file, call id and reason) and
   * "cancelled by customization"; an error outcome means: go on with the unmodified params.
   */
  #hook<H extends HookName>(payload: IntentOp, hook: H, params: HookParams<H>): Promise<HookOutcome<H>> {
    return this.#o.hooks.run(hook, params, this.#ctx(payload));
  }

  async #phone(payload: IntentOp, raw: string): Promise<string | undefined> {
    const normalized = normalizePhone(raw, this.#o.defaultCountry);
    const out = await this.#hook(payload, 'process_phone_number', { phone: normalized });
    if (out.status === 'cancelled') return undefined;
    return out.status === 'ok' ? out.data.phone : normalized;
  }

  /** An extension as the user map knows it: process_phone_number sees internal numbers too (Itgrix contract). */
  async #extension(payload: IntentOp, ext: string): Promise<string> {
    const out = await this.#hook(payload, 'process_phone_number', { phone: ext });
    return out.status === 'ok' ? out.data.phone : ext;
  }

  async #userId(payload: IntentOp, ext: string | undefined): Promise<number | undefined> {
    return ext ? this.#o.users.userFor(await this.#extension(payload, ext)) : undefined;
  }

  async #user(payload: IntentOp, ext: string | undefined): Promise<number> {
    return (await this.#userId(payload, ext)) ?? this.#o.defaultUserId;
  }

  async #register(payload: IntentOp, intent: RegisterIntent): Promise<DispatchResult> {
    const { facts } = payload;
    if (intent.existingCallId) {
      // Click-to-call: Bitrix24 registered this call itself when the agent clicked; registering again would
      // create a second call record.
      this.#log.info(`click-to-call ${intent.existingCallId}: using Bitrix24's own registration`, { callId: facts.call_id });
      // The entity Bitrix24 bound its call to, as a registration's result would name it (for business processes).
      const e = intent.crmEntity;
      return {
        sent: true, callId: intent.existingCallId, ...(e ? { detail: { crmEntityType: e.type, crmEntityId: e.id } } : {}),
        ...(intent.bitrixUserId !== undefined ? { userId: intent.bitrixUserId } : {}),
      };
    }
    // Black/white lists from the config first; a need_registration script, when there is one, has the last word.
    const listed = this.#o.crm?.registrationAllowed({
      direction: intent.direction, number: intent.externalNumber,
      ...(intent.extension ? { extension: intent.extension } : {}), ...(intent.trunk ? { trunk: intent.trunk } : {}), ...(intent.did ? { did: intent.did } : {}),
    });
    const need = await this.#hook(payload, 'need_registration', {
      call_id: facts.call_id, call_stage: 'conversation_requested', direction: intent.direction,
      external_number: intent.externalNumber, extension: intent.extension ?? '', trunk: intent.trunk ?? '', did: intent.did ?? '',
      conversation: facts.conversation,
    });
    if (need.status === 'cancelled' || (need.status === 'ok' && need.data.need_registration === false)) {
      this.#log.info('not registered: need_registration said no', { callId: facts.call_id });
      return { sent: false, skipped: 'need_registration' };
    }
    if (listed && !listed.allowed && need.status !== 'ok') {
      this.#log.info(`not registered: ${listed.reason}`, { callId: facts.call_id });
      return { sent: false, skipped: `registration filter: ${listed.reason}` };
    }
    const rawNumber = intent.direction === 'internal' ? intent.peerExtension ?? '' : intent.externalNumber;
    const phone = intent.withheld ? WITHHELD_NUMBER : await this.#phone(payload, rawNumber);
    if (phone === undefined) return { sent: false, skipped: 'process_phone_number cancelled' };
    const userId = await this.#user(payload, intent.extension);
    let params: Record<string, unknown> = registerCallWire({
      userId,
      phoneNumber: phone,
      type: intent.direction === 'incoming' ? 2 : 1,
      callStartDate: isoWithOffset(intent.startedAt, this.#o.timezone),
      crmCreate: this.#o.crmCreate && !intent.withheld ? 1 : 0,
      show: 0,
      externalCallId: `${payload.pbx}-${intent.callKey}-${intent.regId}`,
      addToChat: this.#o.addToChat ? 1 : 0,
      ...(this.#o.crmSource && !intent.withheld ? { crmSource: this.#o.crmSource } : {}),
      ...(intent.did ?? intent.trunk ? { lineNumber: intent.did ?? intent.trunk! } : {}),
    });

    const search = await this.#hook(payload, 'process_search_params', {
      ...(params as HookParams<'process_search_params'>), conversation: facts.conversation,
      user: { id: userId, extension: intent.extension ?? '' },
    });
    if (search.status === 'cancelled' || (search.status === 'ok' && search.action === 'ignore')) {
      this.#log.info('not registered: process_search_params said ignore', { callId: facts.call_id });
      return { sent: false, skipped: 'process_search_params' };
    }
    if (search.status === 'ok') params = { ...search.data };
    let entity: CallEntity | undefined;
    if (this.#o.crm) {
      const crm = await this.#o.crm.registrationCrmParams({
        callId: this.#crmCallId(payload), direction: intent.direction, phone, withheld: intent.withheld,
        userId: Number(params['USER_ID'] ?? userId), ...(search.status === 'ok' && search.filter ? { filter: search.filter } : {}),
        ...(intent.did ? { did: intent.did } : {}),
      });
      params = { ...params, ...crm.fields, USER_ID: crm.userId };
      entity = crm.entity;
    }
    const final = await this.#hook(payload, 'process_registration_params', params as HookParams<'process_registration_params'>);
    if (final.status === 'cancelled') return { sent: false, skipped: 'process_registration_params cancelled' };
    if (final.status === 'ok') params = { ...final.data };

    const res = await this.#o.client.call(TELEPHONY_METHODS.register, params);
    const parsed = parseRegisterResult(res.result);
    this.#o.crm?.recordBitrixCreated(this.#crmCallId(payload), parsed.crmCreatedEntities);
    if (!entity && parsed.crmEntityType && parsed.crmEntityId) {
      entity = { entityType: parsed.crmEntityType as CallEntity['entityType'], entityId: parsed.crmEntityId, wasCreated: parsed.crmCreatedEntities.length > 0 };
    }
    this.#log.info(`registered ${intent.direction} call ${phone} for user ${String(params['USER_ID'])} → ${parsed.callId}`, { callId: facts.call_id });
    return { sent: true, callId: parsed.callId, detail: { ...parsed, ...(entity ? { entity } : {}) }, userId: Number(params['USER_ID']) };
  }

  /** The CRM service's key for a call (created entities, tasks): stable across its registrations. */
  #crmCallId(payload: IntentOp): string {
    return `${payload.pbx}/${payload.intent.callKey}`;
  }

  /** After the call's last finish: missed-call task or closing the caller's open tasks; updates of created entities. */
  async #callEnded(payload: IntentOp, intent: Extract<Intent, { kind: 'callEnded' }>, prior: Prior): Promise<DispatchResult> {
    const crm = this.#o.crm;
    if (!crm || intent.direction === 'internal') return { sent: false, skipped: 'no CRM work for this call' };
    const reg = prior.get(opKey(payload.pbx, { ...intent, kind: 'register' } as unknown as RegisterIntent, 0));
    const detail = ((reg?.result as DispatchResult | undefined) as { detail?: { entity?: CallEntity } } | undefined)?.detail;
    const phone = intent.withheld ? '' : normalizePhone(intent.externalNumber, this.#o.defaultCountry);
    const callId = this.#crmCallId(payload);
    const done = await crm.onCallFinished({
      callId, direction: intent.direction, answered: intent.answered, phone, withheld: intent.withheld, startedAt: intent.startedAt,
      ...(detail?.entity ? { entity: detail.entity } : {}), ...(intent.lastRungExtension ? { lastRungExtension: intent.lastRungExtension } : {}),
      ...(intent.did ? { did: intent.did } : {}),
    });
    const c = payload.facts.conversation;
    const updated = await crm.updateCreatedEntities({
      callId,
      call: {
        id: c.id, from: c.from, to: c.to, from_local: c.from_local, to_local: c.to_local, trunk: c.trunk, type: c.type, state: 3,
        started_at: new Date(intent.startedAt).toISOString(), answered_at: c.answered_at, ended_at: new Date(intent.endedAt).toISOString(),
        conversations: payload.facts.conversations ?? {},
      },
    });
    return { sent: true, detail: { ...done, updatedEntities: updated.length } };
  }

  async #card(payload: IntentOp, kind: 'show' | 'hide', extensions: string[], callId: string): Promise<DispatchResult> {
    const ids = new Set<number>();
    for (const ext of extensions) {
      const id = await this.#userId(payload, ext);
      if (id !== undefined) ids.add(id);
      else this.#log.warn(`no Bitrix24 user has internal number ${ext}: card not ${kind === 'show' ? 'shown' : 'hidden'} for it`, { callId: payload.facts.call_id });
    }
    if (ids.size === 0) return { sent: false, skipped: 'no user for these extensions' };
    await this.#o.client.call(kind === 'show' ? TELEPHONY_METHODS.show : TELEPHONY_METHODS.hide, showHideWire(callId, [...ids]));
    return { sent: true, callId };
  }

  async #finish(payload: IntentOp, intent: Extract<Intent, { kind: 'finish' }>, callId: string): Promise<DispatchResult> {
    let params: Record<string, unknown> = finishCallWire({
      callId, userId: intent.bitrixUserId ?? await this.#user(payload, intent.extension), duration: intent.durationSec, statusCode: intent.status,
      addToChat: this.#o.addToChat ? 1 : 0, ...(intent.failedReason ? { failedReason: intent.failedReason } : {}),
    });
    const hooked = await this.#hook(payload, 'process_final_params', {
      ...(params as HookParams<'process_final_params'>), conversation: payload.facts.conversation,
    });
    if (hooked.status === 'cancelled') return { sent: false, skipped: 'process_final_params cancelled' };
    if (hooked.status === 'ok') {
      if (hooked.action === 'delete') {
        this.#log.info('process_final_params asked to delete the call: it is left unfinished', { callId: payload.facts.call_id });
        return { sent: false, skipped: 'process_final_params delete' };
      }
      params = { ...hooked.data };
    }
    const res = await this.#o.client.call(TELEPHONY_METHODS.finish, params);
    this.#log.info(`finished ${callId}: status ${String(params['STATUS_CODE'])}, ${String(params['DURATION'])} s, user ${String(params['USER_ID'])}`, { callId: payload.facts.call_id });
    return { sent: true, callId, detail: res.result, userId: Number(params['USER_ID']) };
  }

  /** PBX path → the same file as the daemon sees it (recordings.pbx_dir may be mounted elsewhere here). */
  #localPath(pbxPath: string): string {
    const { pbxDir, localDir } = this.#o.recordings;
    if (pbxDir === localDir) return pbxPath;
    const rel = relative(pbxDir, pbxPath);
    return rel.startsWith('..') || isAbsolute(rel) ? pbxPath : join(localDir, rel);
  }

  async #attach(payload: IntentOp, paths: string[], callId: string): Promise<DispatchResult> {
    if (!this.#o.recordings.attach) return { sent: false, skipped: 'recordings.attach is off' };
    const { facts } = payload;
    let sawGrowing = false;
    for (const pbxPath of paths) {
      const hooked = await this.#hook(payload, 'process_record_file_path', {
        call_id: facts.call_id, from: facts.conversation.from, to: facts.conversation.to, path: pbxPath,
      });
      if (hooked.status === 'cancelled') return { sent: false, skipped: 'process_record_file_path cancelled' };
      const path = this.#localPath(hooked.status === 'ok' ? hooked.data.path : pbxPath);
      if (this.#o.dryRun) {
        await this.#o.client.call(TELEPHONY_METHODS.attachRecord, { CALL_ID: callId, FILENAME: basename(path), LOCAL_PATH: path });
        return { sent: true, callId };
      }
      const info = await stat(path).catch(() => undefined);
      if (!info || info.size <= EMPTY_WAV_BYTES) continue;
      // MixMonitor closes the file when the channel hangs up; a file modified a moment ago may still grow.
      if (this.#now() - info.mtimeMs < 1000) { sawGrowing = true; continue; }
      const content = await readFile(path);
      const res = await uploadRecord(this.#o.client, {
        callId, filename: basename(path), content, inlineMaxBytes: this.#o.recordings.uploadThresholdBytes,
      });
      this.#log.info(`recording ${basename(path)} (${content.byteLength} bytes) attached via ${res.via}`, { callId: facts.call_id });
      return { sent: true, callId, detail: res };
    }
    if (this.#now() - payload.queuedAt < this.#o.recordings.readyTimeoutMs) {
      // Not there yet (or still being written): let the outbox try again shortly.
      throw new BitrixError({ method: TELEPHONY_METHODS.attachRecord, kind: 'server', retryable: true, retryAfterMs: sawGrowing ? 1000 : 2000 },
        `recording for ${facts.call_id} is not ready yet (${paths.join(', ')})`);
    }
    this.#log.warn(`no recording with audio found for ${facts.call_id}: ${paths.join(', ')}`, { callId: facts.call_id });
    return { sent: false, skipped: 'no recording file with audio' };
  }
}
