/**
 * The state the call machine keeps. Plain JSON-serialisable data (it is persisted to SQLite after every step),
 * camelCase, keyed by Asterisk identifiers (channel uniqueid, Linkedid, bridge id).
 */
import type { ChannelKind } from './channels.ts';
import type { CrmEntityRef, Direction, RegisterIntent } from './intents.ts';

export interface Channel {
  id: string;
  name: string;
  kind: ChannelKind;
  /** Endpoint name: the extension number, the trunk name, or Local's exten@context. */
  endpoint: string;
  callerNum?: string;
  exten?: string;
  createdAt: number;
  hungUpAt?: number;
  cause?: string;
  /** The channel that dialled this one; null when the PBX itself created it (Originate, consult leg). */
  dialedBy?: string | null;
  dialString?: string;
  dialStatus?: string;
}

/** One party the call reached: an agent's extension (or an external number the call was forwarded to). */
export interface Conversation {
  channelId: string;
  kind: 'agent' | 'forward' | 'caller';
  /** The extension, or the external number for a forward. */
  party: string;
  /** True when it was rung on behalf of the external party (not an agent's consult call). */
  forCaller: boolean;
  regId?: string;
  ringingAt?: number;
  talking: boolean;
  talkSince?: number;
  talkMs: number;
  firstTalkAt?: number;
  endedAt?: number;
  dialStatus?: string;
  cause?: string;
}

/** One Bitrix24 call (CALL_ID) made for this Asterisk call. */
export interface Registration {
  id: string;
  reason: RegisterIntent['reason'];
  extension?: string;
  /** Conversations (channel ids) belonging to it, in the order they started. */
  conversations: string[];
  /** Extensions whose call card is currently shown. */
  shown: string[];
  answeredBy?: string;
  finished: boolean;
  /** Click-to-call: the Bitrix24 call already exists (registered by Bitrix24 itself); no cards, no register. */
  existingCallId?: string;
}

export interface TransferFact {
  kind: 'blind' | 'attended' | 'pickup' | 'park' | 'unpark';
  at: number;
  target?: string;
}

export interface Call {
  key: string;
  /** Every Linkedid seen for this call (the first is `key`). */
  linkedIds: string[];
  originId?: string;
  /** The channel whose party the agents talk to: the inbound trunk leg, or the extension that placed an internal call. */
  anchorId?: string;
  direction?: Direction;
  startedAt: number;
  externalNumber?: string;
  withheld: boolean;
  did?: string;
  trunk?: string;
  /** The extension that placed an outgoing or internal call. */
  originExtension?: string;
  peerExtension?: string;
  channels: Record<string, Channel>;
  conversations: Record<string, Conversation>;
  registrations: Registration[];
  recordings: string[];
  transfers: TransferFact[];
  endedAt?: number;
  /** Time of the latest event about this call (what a call that vanished while we were away is ended at). */
  lastEventAt?: number;
  /** Click-to-call: started by Bitrix24 with this CALL_ID, for this user and number. */
  clickToCall?: { bitrixCallId: string; bitrixUserId?: number; extension?: string; number?: string; crmEntity?: CrmEntityRef };
}

export interface PendingClick {
  bitrixUserId: number;
  number: string;
  extension: string;
  /** Epoch ms after which an unclaimed click is finished as failed. */
  deadline: number;
  crmEntity?: CrmEntityRef;
}

export interface World {
  calls: Record<string, Call>;
  /** channel uniqueid → call key */
  channelCall: Record<string, string>;
  /** Linkedid → call key (a call keeps its first Linkedid as key even when Asterisk re-links channels). */
  linkedCall: Record<string, string>;
  /** bridge id → channel uniqueids in it (bridges may hold channels of two calls during pickup/park). */
  bridges: Record<string, string[]>;
  /** Click-to-call CALL_IDs already finished → when (so a late OriginateResponse cannot finish one twice). */
  clickToCallDone: Record<string, number>;
  /**
   * Click-to-call Originates sent and not yet claimed by a call or a failure, by CALL_ID. Persisted, so a
   * restart between the click and Asterisk's answer still ends Bitrix24's call one way or the other.
   */
  clickPending: Record<string, PendingClick>;
  /**
   * Channels that hung up in the last minutes → when: a reconnect snapshot taken a moment before their Hangup
   * was read must not bring them (and their ended call) back.
   */
  recentHangups: Record<string, number>;
  /** Hang-ups since recentHangups was last pruned. */
  hangupsSincePrune?: number;
}

/** A click-to-call CALL_ID already finished, or taken by a call in progress: no longer a click to start or fail. */
export function clickSettled(world: World, bitrixCallId: string): boolean {
  return world.clickToCallDone[bitrixCallId] !== undefined
    || Object.values(world.calls).some((c) => c.clickToCall?.bitrixCallId === bitrixCallId);
}

export function emptyWorld(): World {
  return { calls: {}, channelCall: {}, linkedCall: {}, bridges: {}, clickToCallDone: {}, clickPending: {}, recentHangups: {} };
}
