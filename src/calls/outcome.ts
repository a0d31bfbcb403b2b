/**
 * Which Bitrix24 status an unanswered call gets (telephony.externalCall.finish STATUS_CODE), from the dial
 * results and Q.850 hang-up causes of the legs that were tried.
 *
 * Incoming: 486 when every agent rung was busy; 603 when an agent declined (a SIP 603 reaches AMI as DialStatus
 * NOANSWER with cause 21 — see the traces' README); otherwise 304 (missed). A caller who hangs up while it rings is
 * a missed call too: the agent missed it.
 * Outgoing / internal: from the dialled leg — busy 486, invalid number 404, cancelled by our agent 603-S,
 * declined 603, unreachable 480/503.
 */
import type { FinishStatus } from './intents.ts';
import type { Call, Channel, Conversation } from './model.ts';

export interface Outcome {
  status: FinishStatus;
  cause?: string;
}

const BUSY_CAUSES = new Set(['17']);
const DECLINED_CAUSES = new Set(['21']);
const INVALID_NUMBER_CAUSES = new Set(['1', '3', '22', '28']);
const UNAVAILABLE_CAUSES = new Set(['18', '19', '20', '31']);
const CONGESTION_CAUSES = new Set(['27', '34', '38', '41', '42', '44', '47']);

export function missedStatus(call: Call, convs: Conversation[]): Outcome {
  if (call.direction === 'incoming') return incomingMissed(convs.filter((c) => c.kind !== 'caller'));
  if (call.clickToCall && !Object.values(call.channels).some((c) => c.kind === 'trunk')) {
    // Click-to-call whose agent never answered their own phone: nothing was dialled, the call is cancelled
    // (busy when the agent's phone refused it).
    const agent = call.originId ? call.channels[call.originId] : undefined;
    const busy = agent && (agent.dialStatus === 'BUSY' || (agent.cause !== undefined && BUSY_CAUSES.has(agent.cause)));
    return busy ? { status: '486', cause: agent.cause ?? '17' } : { status: '603-S', ...(agent?.cause ? { cause: agent.cause } : {}) };
  }
  const legs = Object.values(call.channels).filter((c) =>
    call.direction === 'outgoing' ? c.kind === 'trunk' : c.kind === 'extension' && c.id !== call.anchorId);
  const leg = legs[legs.length - 1];
  return leg ? dialledLeg(leg) : { status: 'OTHER' };
}

function incomingMissed(convs: Conversation[]): Outcome {
  if (convs.length === 0) return { status: '304' };
  const declined = convs.find((c) => c.cause !== undefined && DECLINED_CAUSES.has(c.cause));
  if (declined) return { status: '603', cause: declined.cause! };
  const busy = convs.every((c) => c.dialStatus === 'BUSY' || (c.cause !== undefined && BUSY_CAUSES.has(c.cause)));
  if (busy) return { status: '486', cause: '17' };
  const last = convs[convs.length - 1];
  return last?.cause ? { status: '304', cause: last.cause } : { status: '304' };
}

function dialledLeg(leg: Channel): Outcome {
  const cause = leg.cause;
  const withCause = (status: FinishStatus): Outcome => (cause ? { status, cause } : { status });
  if (leg.dialStatus === 'BUSY' || (cause && BUSY_CAUSES.has(cause))) return withCause('486');
  if (cause && INVALID_NUMBER_CAUSES.has(cause)) return withCause('404');
  if (leg.dialStatus === 'CANCEL') return withCause('603-S');
  if (cause && DECLINED_CAUSES.has(cause)) return withCause('603');
  if (leg.dialStatus === 'CONGESTION' || (cause && CONGESTION_CAUSES.has(cause))) return withCause('503');
  if (leg.dialStatus === 'CHANUNAVAIL') return withCause('480');
  if (leg.dialStatus === 'NOANSWER' || (cause && UNAVAILABLE_CAUSES.has(cause))) return withCause('480');
  return withCause('OTHER');
}
