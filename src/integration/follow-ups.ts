/**
 * Requests that follow a delivered call request, in the same outbox group (so they run after it, in order, and
 * survive restarts like every other request):
 * - a deal moved to a stage by the outcome of a robot-started callback (robot_webhook.stages);
 * - a business process started on the call's CRM entity at a call event (bizproc[]), with the call's facts as
 *   template parameters.
 * The outbox queues them in the transaction that records the triggering request delivered (its `followUps`
 * option), so a crash cannot lose them.
 */
import type { RestCaller } from '../bitrix/telephony.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log/logger.ts';
import type { OutboxOp, PriorOutcome, StoredOp } from '../outbox/outbox.ts';
import type { Store } from '../store/db.ts';
import type { CrmService } from '../crm/crm-service.ts';
import type { CallFacts } from './call-facts.ts';
import { opKey, type DispatchResult, type IntentOp } from './dispatcher.ts';

export type BizprocEvent = Config['bizproc'][number]['event'];

export type FollowUp =
  | { kind: 'dealStage'; dealId: number; stageId: string; outcome: string }
  | { kind: 'crmActivity'; activityId: number; conversation: CallFacts['conversation'] }
  | { kind: 'bizproc'; event: BizprocEvent; templateId: number; parameters: Record<string, string | number> };

export interface FollowUpOp {
  pbx: string;
  callKey: string;
  regId: string;
  followUp: FollowUp;
}

export function isFollowUp(payload: unknown): payload is FollowUpOp {
  return !!payload && typeof payload === 'object' && 'followUp' in payload;
}

/** What a robot callback needs to remember until its call ends. */
export interface RobotCall {
  dealId: number;
  categoryId: number;
}

const robotKey = (bitrixCallId: string) => `robot-call/${bitrixCallId}`;

/** Bitrix24's business-process document types for the CRM entities a call can be bound to. */
const DOCUMENTS: Record<string, [string, string]> = {
  LEAD: ['CCrmDocumentLead', 'LEAD'], CONTACT: ['CCrmDocumentContact', 'CONTACT'], COMPANY: ['CCrmDocumentCompany', 'COMPANY'],
  DEAL: ['CCrmDocumentDeal', 'DEAL'],
};

export interface FollowUpsOptions {
  store: Store;
  config: Config;
  client: RestCaller;
  log: Logger;
  crm?: CrmService;
  /** Whether a customization exists (activity updates are queued only when get_updated_activity_fields does). */
  hasHook?: (hook: 'get_updated_activity_fields') => boolean;
}

export class FollowUps {
  readonly #o: FollowUpsOptions;
  readonly #log: Logger;

  constructor(o: FollowUpsOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'follow-ups' });
  }

  rememberRobotCall(bitrixCallId: string, call: RobotCall): void {
    this.#o.store.setKv(robotKey(bitrixCallId), call);
  }

  /** The follow-up ops a delivered call request triggers (none for most). */
  after(op: StoredOp, result: unknown): OutboxOp[] {
    if (isFollowUp(op.payload)) return [];
    const payload = op.payload as IntentOp;
    const r = result as DispatchResult | undefined;
    if (!r || !r.sent) return [];
    const { intent, facts } = payload;
    const out: FollowUp[] = [];
    const events: BizprocEvent[] = [];
    if (intent.kind === 'register') events.push(intent.direction === 'incoming' ? 'incoming' : 'outgoing');
    if (intent.kind === 'finish') {
      const activityId = Number((r.detail as { CRM_ACTIVITY_ID?: unknown } | undefined)?.CRM_ACTIVITY_ID);
      if (this.#o.crm && activityId > 0 && this.#o.hasHook?.('get_updated_activity_fields')) {
        out.push({ kind: 'crmActivity', activityId, conversation: facts.conversation });
      }
      if (intent.answered) events.push('answered');
      else if (facts.direction === 'incoming') events.push('missed');
      const robot = r.callId ? this.#o.store.getKv<RobotCall>(robotKey(r.callId)) : undefined;
      if (robot && intent.outcome) {
        const stages = this.#o.config.robotWebhook?.stages.find((s) => s.categoryId === robot.categoryId);
        const stageId = stages?.[intent.outcome];
        if (stageId) out.push({ kind: 'dealStage', dealId: robot.dealId, stageId, outcome: intent.outcome });
        this.#o.store.deleteKv(robotKey(r.callId!));
      }
    }
    if (intent.kind === 'attachRecord') events.push('recording');
    for (const event of events) {
      for (const bp of this.#o.config.bizproc.filter((b) => b.event === event)) {
        out.push({
          kind: 'bizproc', event, templateId: bp.templateId,
          parameters: {
            call_id: r.callId ?? '', phone: facts.external_number, direction: facts.direction, extension: facts.extension,
            // The user the request named (who answered, for a finish); a recording's comes from the registration.
            user_id: Number.isInteger(r.userId) ? r.userId! : 0,
            did: facts.did, status: intent.kind === 'finish' ? intent.status : '', duration: intent.kind === 'finish' ? intent.durationSec : 0,
            record: intent.kind === 'attachRecord' ? intent.paths[0] ?? '' : '',
          },
        });
      }
    }
    return out.map((followUp, i) => ({
      idemKey: `${followUp.kind}/${op.idemKey}/${i}`, group: op.group, kind: followUp.kind,
      payload: { pbx: payload.pbx, callKey: intent.callKey, regId: intent.regId, followUp } satisfies FollowUpOp,
    }));
  }

  async run(p: FollowUpOp, prior: ReadonlyMap<string, PriorOutcome>): Promise<DispatchResult> {
    const f = p.followUp;
    if (f.kind === 'dealStage') {
      await this.#o.client.call('crm.item.update', { entityTypeId: 2, id: f.dealId, fields: { stageId: f.stageId } });
      this.#log.info(`deal ${f.dealId} moved to ${f.stageId} (${f.outcome})`, { callId: p.callKey });
      return { sent: true };
    }
    if (f.kind === 'crmActivity') {
      await this.#o.crm?.updateActivity({ callId: `${p.pbx}/${p.callKey}`, activityId: f.activityId, conversation: f.conversation });
      return { sent: true };
    }
    // The business process runs on the call's CRM entity, as Bitrix24 bound it at registration.
    const reg = prior.get(opKey(p.pbx, { kind: 'register', callKey: p.callKey, regId: p.regId } as never, 0));
    const registered = reg?.result as DispatchResult | undefined;
    const detail = (registered as { detail?: { crmEntityType?: string; crmEntityId?: number } } | undefined)?.detail;
    const parameters = { ...f.parameters };
    if (!parameters['user_id'] && registered?.sent && registered.userId) parameters['user_id'] = registered.userId;
    const doc = detail?.crmEntityType ? DOCUMENTS[detail.crmEntityType.toUpperCase()] : undefined;
    if (!doc || !detail?.crmEntityId) {
      this.#log.info(`business process ${f.templateId} (${f.event}) not started: the call has no CRM entity`, { callId: p.callKey });
      return { sent: false, skipped: 'no CRM entity' };
    }
    await this.#o.client.call('bizproc.workflow.start', {
      TEMPLATE_ID: f.templateId, DOCUMENT_ID: ['crm', doc[0], `${doc[1]}_${detail.crmEntityId}`], PARAMETERS: parameters,
    });
    this.#log.info(`business process ${f.templateId} started on ${doc[1]} ${detail.crmEntityId} (${f.event})`, { callId: p.callKey });
    return { sent: true };
  }
}
