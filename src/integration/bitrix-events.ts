/**
 * Bitrix24 events into the daemon: POSTed to /bitrix24/events (form-encoded, PHP-style nested keys: `event`,
 * `data[…]`, `auth[…]`, `ts`), or polled with `event.offline.get` for PBXes Bitrix24 cannot reach. Both feed
 * `handle`. Online events are authenticated by `auth[application_token]`, compared in constant time with
 * bitrix24.application_token (or the token the local application received at install): a missing or wrong
 * token gets 401 and a log line, a malformed body 400; nothing else happens.
 *
 * Bitrix24 delivers each event once, without retries, and waits only briefly: the HTTP answer is sent as soon
 * as the event is accepted; the work (Originate, register) runs after.
 */
import type http from 'node:http';
import { BitrixError } from '../bitrix/errors.ts';
import { fromPhpQuery, type PhpObject, type PhpValue } from '../bitrix/php-query.ts';
import type { RestCaller } from '../bitrix/telephony.ts';
import { TELEPHONY_METHODS, parseRegisterResult, registerCallWire } from '../bitrix/telephony.ts';
import type { CrmEntityRef } from '../calls/intents.ts';
import type { Logger } from '../log/logger.ts';
import { isRetryable } from '../outbox/outbox.ts';
import type { ClickToCall } from './click-to-call.ts';
import { readBody, reply, type HttpServer } from './http-server.ts';
import { isoWithOffset } from './iso-time.ts';
import { sameSecret } from './secret.ts';

export interface BitrixEventsOptions {
  clickToCall: ClickToCall | undefined;
  client: RestCaller;
  /** Tokens accepted in auth[application_token] (config and/or the installed application's). */
  tokens: () => Promise<Array<string | undefined>>;
  defaultUserId: number;
  timezone: string;
  log: Logger;
}

/**
 * `done` resolves once the event's effect is committed: true, or false when it failed in a way worth another
 * delivery — a retryable error (an offline event is cleared from Bitrix24's queue only after true).
 */
export type EventOutcome = { status: number; body: Record<string, unknown>; done?: Promise<boolean> };

const str = (v: PhpValue | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

export class BitrixEvents {
  readonly #o: BitrixEventsOptions;
  readonly #log: Logger;

  constructor(o: BitrixEventsOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'events' });
  }

  attach(http: HttpServer): void {
    http.route('POST', '/bitrix24/events', (req, res) => this.#online(req, res));
  }

  async #online(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const text = await readBody(req);
    if (text === undefined) return this.#reject(res, 413, 'body larger than 64 KiB');
    let body: PhpObject;
    try {
      body = (req.headers['content-type'] ?? '').includes('application/json') ? asObject(JSON.parse(text)) : fromPhpQuery(text);
    } catch (err) {
      return this.#reject(res, 400, `malformed event body: ${(err as Error).message}`);
    }
    const auth = typeof body.auth === 'object' ? body.auth : undefined;
    if (!(await this.#tokenOk(str(auth?.application_token)))) {
      return this.#reject(res, 401, `event ${str(body.event)?.slice(0, 40) ?? '(none)'} with a missing or wrong application_token`);
    }
    const outcome = this.handle(str(body.event), typeof body.data === 'object' ? body.data : undefined);
    reply(res, outcome.status, outcome.body);
  }

  #reject(res: http.ServerResponse, status: number, why: string): void {
    this.#log.warn(`Bitrix24 event rejected (${status}): ${why}`, { code: 'E_WEBHOOK' });
    reply(res, status, { error: why.startsWith('event ') ? 'invalid application_token' : why });
  }

  async #tokenOk(given: string | undefined): Promise<boolean> {
    return (await this.#o.tokens()).some((t) => sameSecret(given, t));
  }

  /** One event (online or offline): validated, answered at once, processed after. */
  handle(event: string | undefined, data: PhpObject | undefined): EventOutcome {
    const name = (event ?? '').toUpperCase();
    if (name === 'ONEXTERNALCALLSTART') {
      const callId = str(data?.CALL_ID);
      const userId = Number(str(data?.USER_ID));
      const phone = str(data?.PHONE_NUMBER_INTERNATIONAL) ?? str(data?.PHONE_NUMBER);
      if (!callId || !Number.isInteger(userId) || userId <= 0 || !phone) {
        this.#log.warn('ONEXTERNALCALLSTART without CALL_ID, USER_ID or PHONE_NUMBER: ignored', { code: 'E_WEBHOOK' });
        return { status: 400, body: { error: 'data[CALL_ID], data[USER_ID] and data[PHONE_NUMBER] are required' } };
      }
      if (!this.#o.clickToCall) return { status: 503, body: { error: 'no PBX connection for click-to-call' } };
      const crmEntity = crmEntityOf(data);
      const done = this.#o.clickToCall.start({
        bitrixCallId: callId, bitrixUserId: userId, phone: str(data?.PHONE_NUMBER) ?? phone, ...(crmEntity ? { crmEntity } : {}),
      })
        .then(() => true, (err: Error) => { this.#log.error(`click-to-call ${callId}: ${err.message}`); return !worthRedelivery(err); });
      return { status: 200, body: { ok: true }, done };
    }
    if (name === 'ONEXTERNALCALLBACKSTART') {
      const phone = str(data?.PHONE_NUMBER);
      if (!phone) return { status: 400, body: { error: 'data[PHONE_NUMBER] is required' } };
      const done = this.#callback(phone, data ?? {})
        .then(() => true, (err: Error) => { this.#log.error(`callback to ${phone}: ${err.message}`); return !worthRedelivery(err); });
      return { status: 200, body: { ok: true }, done };
    }
    this.#log.info(`Bitrix24 event ${name || '(none)'} ignored: not one the daemon handles`);
    return { status: 200, body: { ignored: true } };
  }

  /** Website callback form: Bitrix24 has no call yet, so register one (TYPE 4, callback), then ring as a click. */
  async #callback(phone: string, data: PhpObject): Promise<void> {
    if (!this.#o.clickToCall) return;
    const entityType = str(data.CRM_ENTITY_TYPE);
    const entityId = Number(str(data.CRM_ENTITY_ID));
    const line = str(data.LINE_NUMBER);
    const res = await this.#o.client.call(TELEPHONY_METHODS.register, registerCallWire({
      userId: this.#o.defaultUserId, phoneNumber: phone, type: 4, callStartDate: isoWithOffset(Date.now(), this.#o.timezone), show: 0,
      ...(entityType && Number.isInteger(entityId) && entityId > 0 ? { crmEntityType: entityType, crmEntityId: entityId } : {}),
      ...(line ? { lineNumber: line } : {}),
    }));
    const { callId } = parseRegisterResult(res.result);
    this.#log.info(`callback request for ${phone} registered as ${callId}`);
    const crmEntity = crmEntityOf(data);
    await this.#o.clickToCall.start({ bitrixCallId: callId, bitrixUserId: this.#o.defaultUserId, phone, ...(crmEntity ? { crmEntity } : {}) });
  }
}

/**
 * A failure worth another delivery: what the outbox would retry — Bitrix24 or the network briefly unavailable,
 * or credentials (the dispatcher retries those too, until the admin fixes them); anything else is permanent.
 */
function worthRedelivery(err: unknown): boolean {
  return isRetryable(err) || (err instanceof BitrixError && err.kind === 'auth');
}

/** CRM_ENTITY_TYPE / CRM_ENTITY_ID of an event, when both are there and sane. */
function crmEntityOf(data: PhpObject | undefined): CrmEntityRef | undefined {
  const type = str(data?.CRM_ENTITY_TYPE)?.toUpperCase();
  const id = Number(str(data?.CRM_ENTITY_ID));
  return type && /^[A-Z_]{1,20}$/.test(type) && Number.isInteger(id) && id > 0 ? { type, id } : undefined;
}

function asObject(v: unknown): PhpObject {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('the JSON body is not an object');
  return JSON.parse(JSON.stringify(v), (_k, x: unknown) => (typeof x === 'number' || typeof x === 'boolean' ? String(x) : x)) as PhpObject;
}
