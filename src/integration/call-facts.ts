/**
 * The call as customization scripts see it: the Itgrix `conversation` / `call` objects (snake_case, as in
 * shared/seeds/itgrix-customizations.txt), built from the machine's state when an intent is queued and stored
 * with it, so a hook run after a restart sees the same facts.
 */
import type { Call, Conversation } from '../calls/model.ts';
import type { Intent } from '../calls/intents.ts';
import type { Conversation as ConversationFacts } from '../hooks/contract.ts';

export interface CallFacts {
  pbx: string;
  call_id: string;
  registration: string;
  direction: string;
  external_number: string;
  did: string;
  trunk: string;
  extension: string;
  recordings: string[];
  conversation: ConversationFacts;
  /** At the end of the call: every conversation, by id (get_updated_entity_fields). */
  conversations?: Record<string, ConversationFacts>;
}

const iso = (ms: number | undefined): string => (ms === undefined ? '' : new Date(ms).toISOString());

export function callFacts(pbx: string, call: Call, intent: Intent): CallFacts {
  const reg = call.registrations.find((r) => r.id === intent.regId);
  const convId = reg?.answeredBy ?? reg?.conversations[reg.conversations.length - 1];
  const facts = conversationFacts(pbx, call, intent, convId ? call.conversations[convId] : undefined, reg?.extension);
  if (intent.kind === 'callEnded') {
    facts.conversations = Object.fromEntries(Object.values(call.conversations)
      .map((c) => [`${call.key}/${c.channelId}`, conversationFacts(pbx, call, intent, c, reg?.extension).conversation]));
  }
  return facts;
}

function conversationFacts(pbx: string, call: Call, intent: Intent, conv: Conversation | undefined, regExtension: string | undefined): CallFacts {
  const reg = { extension: regExtension };
  const ext = conv && conv.kind !== 'forward' ? conv.party : reg?.extension ?? call.originExtension ?? '';
  const external = call.externalNumber ?? '';
  const incoming = call.direction === 'incoming';
  const type = call.direction === 'internal' ? 1 : incoming ? 2 : 3;
  const stateCode = conv?.endedAt !== undefined ? 'hung' : conv?.talking ? 'talking' : 'ringing';
  return {
    pbx,
    call_id: call.key,
    registration: intent.regId,
    direction: call.direction ?? 'unknown',
    external_number: external,
    did: call.did ?? '',
    trunk: call.trunk ?? '',
    extension: ext,
    recordings: [...call.recordings],
    conversation: {
      id: call.key,
      channel_id: conv?.channelId ?? '',
      parent_channel_id: call.originId ?? '',
      started_at: iso(conv?.ringingAt ?? call.startedAt),
      answered_at: iso(conv?.firstTalkAt),
      ended_at: iso(conv?.endedAt),
      from: incoming ? external : call.originExtension ?? ext,
      from_local: !incoming,
      to: incoming ? ext : call.direction === 'internal' ? call.peerExtension ?? '' : external,
      to_local: incoming || call.direction === 'internal',
      trunk: incoming ? call.did ?? call.trunk ?? '' : call.trunk ?? '',
      type,
      type_code: type === 1 ? 'internal' : incoming ? 'incoming' : 'outgoing',
      state: stateCode === 'hung' ? 3 : stateCode === 'talking' ? 2 : 1,
      state_code: stateCode,
      was_answered: conv?.firstTalkAt !== undefined,
    },
  };
}
