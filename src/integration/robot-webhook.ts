/**
 * The robot webhook (the Mango Office idea): a Bitrix24 deal robot, or any other system, calls
 * `GET|POST /webhook/callback?token=…` to
 * - start a callback (`deal_id`, optional `phone`, `user_id` or `extension`): the agent's phone rings first,
 *   then the client's; the call is registered on the deal's contact, and when it ends the deal moves to the
 *   stage configured for the outcome (POSITIVE: the client answered, NEGATIVE: not reached, NEUTRAL: the agent
 *   did not answer);
 * - or move a deal right away (`action=move`, `deal_id`, `result=POSITIVE|NEGATIVE|NEUTRAL`).
 * Parameters come as a query string, form fields or JSON alike, with any key spelling (`deal_id`, `DealID`,
 * `dealId`); invalid ones get 400 with a message that names them. The token in the URL authenticates.
 */
import type http from 'node:http';
import type { RestCaller } from '../bitrix/telephony.ts';
import { TELEPHONY_METHODS, parseRegisterResult, registerCallWire } from '../bitrix/telephony.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log/logger.ts';
import type { ClickToCall, ExtensionLookup } from './click-to-call.ts';
import type { FollowUps } from './follow-ups.ts';
import { readBody, reply, type HttpServer } from './http-server.ts';
import { isoWithOffset } from './iso-time.ts';
import { sameSecret } from './secret.ts';

type Outcome = 'positive' | 'negative' | 'neutral';
const OUTCOMES: Record<string, Outcome> = { POSITIVE: 'positive', NEGATIVE: 'negative', NEUTRAL: 'neutral' };

class BadRequest extends Error {}

interface Deal {
  id: number;
  categoryId: number;
  assignedById?: number;
  contactId?: number;
  companyId?: number;
}

export class RobotWebhook {
  readonly #o: RobotWebhookOptions;
  readonly #log: Logger;

  constructor(o: RobotWebhookOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'robot-webhook' });
  }

  attach(http: HttpServer): void {
    http.route('GET', '/webhook/callback', (req, res, url) => this.#serve(req, res, url));
    http.route('POST', '/webhook/callback', (req, res, url) => this.#serve(req, res, url));
  }

  async #serve(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    let params: Record<string, string>;
    try {
      params = await readParams(req, url);
    } catch (err) {
      return this.#bad(res, (err as Error).message);
    }
    if (!this.#tokenOk(params['token'])) {
      this.#log.warn('robot webhook called with a missing or wrong token', { code: 'E_WEBHOOK' });
      return reply(res, 401, { error: 'missing or wrong token' });
    }
    try {
      const dealId = positiveInt(params['dealid'], 'deal_id');
      const action = (params['action'] ?? 'callback').toLowerCase();
      if (action === 'move' || action === 'dealmove') {
        const result = params['result']?.toUpperCase() ?? '';
        const outcome = OUTCOMES[result];
        if (!outcome) throw new BadRequest(`result must be POSITIVE, NEGATIVE or NEUTRAL (got ${JSON.stringify(params['result'] ?? '')})`);
        const stageId = await this.#moveDeal(dealId, outcome);
        return reply(res, 200, { ok: true, deal_id: dealId, stage_id: stageId });
      }
      if (action !== 'callback') throw new BadRequest(`action must be callback or move (got ${JSON.stringify(action)})`);
      const started = await this.#callback(dealId, params);
      return reply(res, 200, { ok: true, ...started });
    } catch (err) {
      if (err instanceof BadRequest) return this.#bad(res, err.message);
      this.#log.error(`robot webhook failed: ${(err as Error).message}`);
      return reply(res, 502, { error: (err as Error).message });
    }
  }

  #bad(res: http.ServerResponse, why: string): void {
    this.#log.warn(`robot webhook: ${why}`, { code: 'E_WEBHOOK' });
    reply(res, 400, { error: why });
  }

  #tokenOk(given: string | undefined): boolean {
    return sameSecret(given, this.#o.config.token);
  }

  async #deal(id: number): Promise<Deal> {
    const res = await this.#o.client.call<{ item?: Record<string, unknown> }>('crm.item.get', { entityTypeId: 2, id });
    const item = res.result?.item;
    if (!item) throw new BadRequest(`deal ${id} not found`);
    const num = (v: unknown) => (v === undefined || v === null || v === '' ? undefined : Number(v));
    const deal: Deal = { id, categoryId: num(item.categoryId) ?? 0 };
    const assigned = num(item.assignedById);
    const contact = num(item.contactId);
    const company = num(item.companyId);
    if (assigned) deal.assignedById = assigned;
    if (contact) deal.contactId = contact;
    if (company) deal.companyId = company;
    return deal;
  }

  async #moveDeal(dealId: number, outcome: Outcome): Promise<string> {
    const deal = await this.#deal(dealId);
    const stageId = this.#o.config.stages.find((s) => s.categoryId === deal.categoryId)?.[outcome];
    if (!stageId) throw new BadRequest(`no stage configured for ${outcome.toUpperCase()} in pipeline ${deal.categoryId} (robot_webhook.stages)`);
    await this.#o.client.call('crm.item.update', { entityTypeId: 2, id: dealId, fields: { stageId } });
    this.#log.info(`deal ${dealId} moved to ${stageId} (${outcome.toUpperCase()})`);
    return stageId;
  }

  async #callback(dealId: number, params: Record<string, string>): Promise<Record<string, unknown>> {
    const c2c = this.#o.clickToCall;
    if (!c2c) throw new Error('no PBX connection to ring the agent');
    const deal = await this.#deal(dealId);
    let phone = params['phone']?.trim();
    if (!phone && deal.contactId) {
      const res = await this.#o.client.call<{ item?: { fm?: Array<{ typeId?: string; value?: string }> } }>('crm.item.get', { entityTypeId: 3, id: deal.contactId });
      phone = res.result?.item?.fm?.find((m) => m.typeId === 'PHONE' && m.value)?.value;
    }
    if (!phone) throw new BadRequest(`no phone: pass phone=, or give deal ${dealId} a contact with a phone number`);
    if (!/^\+?[\d\s()-]{3,20}$/.test(phone)) throw new BadRequest(`phone ${JSON.stringify(phone)} is not a phone number`);
    let userId: number | undefined;
    if (params['userid']) userId = positiveInt(params['userid'], 'user_id');
    else if (params['extension']) {
      userId = await this.#o.users.userFor(params['extension']);
      if (!userId) throw new BadRequest(`extension ${params['extension']} belongs to no Bitrix24 user`);
    } else userId = deal.assignedById;
    if (!userId) throw new BadRequest('no agent: pass user_id= or extension=, or assign the deal to someone');

    const crmEntity = deal.contactId ? { type: 'CONTACT', id: deal.contactId } : deal.companyId ? { type: 'COMPANY', id: deal.companyId } : undefined;
    const res = await this.#o.client.call(TELEPHONY_METHODS.register, registerCallWire({
      userId, phoneNumber: phone, type: 1, callStartDate: isoWithOffset(Date.now(), this.#o.timezone), show: 0,
      ...(crmEntity ? { crmEntityType: crmEntity.type, crmEntityId: crmEntity.id } : {}),
    }));
    const { callId } = parseRegisterResult(res.result);
    this.#o.followUps.rememberRobotCall(callId, { dealId, categoryId: deal.categoryId });
    const started = await c2c.start({ bitrixCallId: callId, bitrixUserId: userId, phone, ...(crmEntity ? { crmEntity } : {}) });
    this.#log.info(`callback for deal ${dealId}: ${phone} for user ${userId} → ${callId} (${started.status})`);
    return { call_id: callId, status: started.status };
  }
}

export interface RobotWebhookOptions {
  config: NonNullable<Config['robotWebhook']>;
  client: RestCaller;
  clickToCall: ClickToCall | undefined;
  users: ExtensionLookup & { userFor(ext: string): Promise<number | undefined> };
  followUps: FollowUps;
  timezone: string;
  log: Logger;
}

/** Query string, then form fields or a JSON object, merged; keys folded to lower case without `_`/`-`. */
async function readParams(req: http.IncomingMessage, url: URL): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const put = (k: string, v: unknown) => {
    if (typeof v === 'string' || typeof v === 'number') out[k.toLowerCase().replace(/[_-]/g, '')] = String(v);
  };
  for (const [k, v] of url.searchParams) put(k, v);
  if (req.method === 'POST') {
    const text = await readBody(req);
    if (text === undefined) throw new Error('body larger than 64 KiB');
    const type = req.headers['content-type'] ?? '';
    const trimmed = text.trim();
    if (type.includes('application/json') || trimmed.startsWith('{')) {
      let json: unknown;
      try {
        json = JSON.parse(trimmed || '{}');
      } catch {
        throw new Error('the body is not valid JSON');
      }
      if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error('the JSON body must be an object');
      for (const [k, v] of Object.entries(json)) put(k, v);
    } else if (trimmed) {
      for (const [k, v] of new URLSearchParams(trimmed)) put(k, v);
    }
  }
  return out;
}

function positiveInt(v: string | undefined, name: string): number {
  if (v === undefined || v === '') throw new BadRequest(`${name} is required`);
  if (!/^\d+$/.test(v.trim()) || Number(v) <= 0) throw new BadRequest(`${name} must be a positive integer (got ${JSON.stringify(v)})`);
  return Number(v);
}
