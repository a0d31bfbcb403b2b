/**
 * Click-to-call: an agent clicks a number in Bitrix24 (ONEXTERNALCALLSTART, with the CALL_ID Bitrix24 already
 * registered) and the daemon rings the agent's phone with AMI Originate, then the client. The call is never
 * registered again: the Originate carries the CALL_ID as an inherited channel variable (B24_CALL_ID) and the
 * OriginateResponse names the first channel, so the call machine finishes that CALL_ID — answered with talk
 * time, or with the status of what went wrong — and attaches the recording.
 *
 * A second click on the same CALL_ID while the first is in progress is ignored (Bitrix24 delivers events at
 * least once, and users double-click). An agent without an internal number gets a finished, failed call and a
 * log line naming the user.
 *
 * Asterisk's answer can be lost (the AMI connection drops, the action times out, the daemon restarts) while the
 * phones ring anyway. So the click is committed as pending before Originate is written; a refused Originate
 * fails it at once, but a lost answer does not: the call is claimed by the first channel that carries its
 * B24_CALL_ID (live, or read with Status after the reconnect), and only a click nothing claimed within the ring
 * timeout plus three action timeouts is finished as failed.
 */
import type { AmiClient } from '../ami/client.ts';
import type { AmiMessage } from '../ami/message.ts';
import { CLICK_TO_CALL_VAR } from '../ami/to-call-event.ts';
import type { ClickToCallFailedEvent } from '../calls/events.ts';
import type { CrmEntityRef } from '../calls/intents.ts';
import type { Config } from '../config/schema.ts';
import type { DaemonError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import type { HookRunnerLike } from './dispatcher.ts';
import type { PbxSession } from './pbx-session.ts';

export interface ClickToCallRequest {
  bitrixCallId: string;
  bitrixUserId: number;
  phone: string;
  /** The CRM entity Bitrix24 bound its call to (event CRM_ENTITY_TYPE / CRM_ENTITY_ID): business processes run on it. */
  crmEntity?: CrmEntityRef;
}

export type ClickToCallResult =
  | { status: 'originated'; extension: string; actionId: string }
  | { status: 'duplicate' }
  | { status: 'failed'; reason: ClickToCallFailedEvent['reason']; detail: string };

export interface ExtensionLookup {
  extensionFor(userId: number): Promise<string | undefined>;
}

interface Pending {
  req: ClickToCallRequest;
  extension: string;
  number: string;
  /** Past this (epoch ms) an OriginateResponse is no longer awaited here (the machine's own deadline rules). */
  until: number;
}

/** OriginateResponse Reason (Asterisk's AST_CONTROL_* of the first leg) → why it failed. */
const REASONS: Record<string, ClickToCallFailedEvent['reason']> = { '0': 'unavailable', '1': 'noanswer', '3': 'noanswer', '5': 'busy', '8': 'unavailable' };
/** How long a CALL_ID is remembered against repeated clicks, past the ring timeout. */
const DUPLICATE_WINDOW_MS = 10 * 60_000;

export class ClickToCall {
  readonly #session: PbxSession;
  readonly #ami: AmiClient;
  readonly #users: ExtensionLookup;
  readonly #hooks: HookRunnerLike;
  readonly #config: Config['clickToCall'];
  /** How long after the ring timeout a lost answer is waited for (a channel with the CALL_ID may still show up). */
  readonly #graceMs: number;
  readonly #log: Logger;
  readonly #pending = new Map<string, Pending>();
  readonly #seen = new Map<string, number>();


  constructor(o: { session: PbxSession; ami: AmiClient; users: ExtensionLookup; hooks: HookRunnerLike; config: Config['clickToCall']; actionTimeoutMs: number; log: Logger }) {
    this.#graceMs = 3 * o.actionTimeoutMs;
    this.#session = o.session;
    this.#ami = o.ami;
    this.#users = o.users;
    this.#hooks = o.hooks;
    this.#config = o.config;
    this.#log = o.log.child({ component: 'click-to-call' });
    this.#ami.on('event', (msg) => this.#onAmiEvent(msg));
  }

  async start(req: ClickToCallRequest): Promise<ClickToCallResult> {
    const now = Date.now();
    for (const [id, at] of this.#seen) if (now - at > DUPLICATE_WINDOW_MS + this.#config.ringTimeoutMs) this.#seen.delete(id);
    for (const [id, p] of this.#pending) if (p.until < now) this.#pending.delete(id);
    if (this.#seen.has(req.bitrixCallId) || this.#session.knowsClick(req.bitrixCallId)) {
      this.#log.info(`click-to-call ${req.bitrixCallId} is already in progress: repeated event ignored`);
      return { status: 'duplicate' };
    }
    this.#seen.set(req.bitrixCallId, now);
    const ctx = { callId: `click-to-call/${req.bitrixCallId}` };

    let extension: string | undefined;
    try {
      extension = await this.#users.extensionFor(req.bitrixUserId);
    } catch (err) {
      return this.#fail(req, undefined, req.phone, 'failed', `could not read Bitrix24's users to find user ${req.bitrixUserId}'s internal number: ${(err as Error).message}`);
    }
    if (!extension) {
      return this.#fail(req, undefined, req.phone, 'nouser',
        `Bitrix24 user ${req.bitrixUserId} has no internal number (UF_PHONE_INNER): cannot ring their phone`);
    }
    const phoneOut = await this.#hooks.run('process_phone_number', { phone: req.phone }, ctx);
    const number = phoneOut.status === 'ok' ? phoneOut.data.phone : req.phone;
    const fill = (template: string) => template.replaceAll('{extension}', extension).replaceAll('{number}', number);
    let params = {
      caller_id: fill(this.#config.callerId), channel: fill(this.#config.channel), context: this.#config.context,
      extension: number, priority: String(this.#config.priority),
    } as { caller_id: string; channel: string; context: string; extension: string; priority: string | number; codecs?: string; variable?: string | Record<string, string> };
    const hooked = await this.#hooks.run('process_originate_params', params, ctx);
    if (hooked.status === 'cancelled') return this.#fail(req, extension, number, 'failed', 'cancelled by customization (process_originate_params)');
    if (hooked.status === 'ok') params = { ...hooked.data };

    const variables = [`__${CLICK_TO_CALL_VAR}=${req.bitrixCallId}`, ...hookVariables(params.variable)];
    const deadline = Date.now() + this.#config.ringTimeoutMs + this.#graceMs;
    const pending: Pending = { req, extension, number, until: deadline };
    this.#session.feed({
      type: 'clickToCallStarted', at: Date.now(), bitrixCallId: req.bitrixCallId, bitrixUserId: req.bitrixUserId, number, extension, deadline,
      ...(req.crmEntity ? { crmEntity: req.crmEntity } : {}),
    });
    if (!this.#session.flush()) {
      // Not even the pending click could be saved: ringing phones now could leave a call nobody follows. The
      // failure is queued behind it (both are fed again once the database takes writes), so the call ends.
      return this.#fail(req, extension, number, 'failed', 'the state database refused the write (E_STORE): nothing was rung');
    }
    let actionId = '';
    try {
      // Known before the write: the OriginateResponse may come in the same socket read as the response, and
      // must be fed to the call machine in its place among the call's events.
      const res = await this.#ami.action('Originate', {
        Channel: params.channel, Context: params.context, Exten: params.extension, Priority: String(params.priority),
        CallerID: params.caller_id, Timeout: this.#config.ringTimeoutMs, Async: 'true', Variable: variables,
        ...(params.codecs ? { Codecs: params.codecs } : {}),
      }, { onActionId: (id) => { actionId = id; this.#pending.set(id, pending); } });
      this.#log.info(`click-to-call ${req.bitrixCallId}: ringing ${params.channel} for user ${req.bitrixUserId}, then ${number}`);
      return { status: 'originated', extension, actionId: res.actionId };
    } catch (err) {
      const error = err as DaemonError;
      // Refused, or never written: nothing rings. Otherwise the answer was lost and the phones may be ringing.
      if (error.code === 'E_AMI_ACTION' || actionId === '') {
        this.#pending.delete(actionId);
        return this.#fail(req, extension, number, 'failed', `Originate refused: ${error.message}`);
      }
      this.#log.warn(`click-to-call ${req.bitrixCallId}: Asterisk's answer to Originate was lost (${error.message}); `
        + `the call is followed by its ${CLICK_TO_CALL_VAR} variable, and finished as failed if no channel carries it by ${new Date(deadline).toISOString()}`);
      return { status: 'originated', extension, actionId };
    }
  }

  /** OriginateResponse: success names the first channel (its call becomes this click's); failure ends it. */
  #onAmiEvent(msg: AmiMessage): void {
    if (msg.name !== 'OriginateResponse') return;
    const actionId = msg.fields['ActionID'] ?? '';
    const pending = this.#pending.get(actionId);
    if (!pending) return;
    this.#pending.delete(actionId);
    const { req, extension, number } = pending;
    const uniqueid = msg.fields['Uniqueid'];
    if (msg.fields['Response'] === 'Success' && uniqueid && uniqueid !== '<unknown>') {
      // Fed in order with the call's own events (the session commits them together on its next flush).
      this.#session.feed({
        type: 'clickToCall', at: msg.receivedAt, bitrixCallId: req.bitrixCallId, channelId: uniqueid, extension,
        bitrixUserId: req.bitrixUserId, number,
      });
      return;
    }
    const reason = REASONS[msg.fields['Reason'] ?? ''] ?? 'failed';
    const what = reason === 'noanswer' ? 'did not answer' : reason === 'busy' ? 'was busy' : 'could not be reached';
    this.#fail(req, extension, number, reason, `the agent's phone (${extension}) ${what}`);
  }

  #fail(req: ClickToCallRequest, extension: string | undefined, number: string, reason: ClickToCallFailedEvent['reason'], detail: string): ClickToCallResult {
    this.#log.warn(`click-to-call ${req.bitrixCallId} failed: ${detail}`);
    this.#session.feed({
      type: 'clickToCallFailed', at: Date.now(), bitrixCallId: req.bitrixCallId, bitrixUserId: req.bitrixUserId, number, reason, detail,
      ...(extension ? { extension } : {}), ...(req.crmEntity ? { crmEntity: req.crmEntity } : {}),
    });
    this.#session.flush();
    return { status: 'failed', reason, detail };
  }
}

/** process_originate_params may add variables as "A=1,B=2" or { A: '1' }. */
function hookVariables(v: string | Record<string, string> | undefined): string[] {
  if (!v) return [];
  if (typeof v === 'string') return v.split(',').map((x) => x.trim()).filter(Boolean);
  return Object.entries(v).map(([k, val]) => `${k}=${val}`);
}
