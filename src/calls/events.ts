/**
 * Call events: what the state machine consumes. The AMI adapter (src/ami/to-call-event.ts) maps Asterisk's
 * PascalCase events to these; nothing here knows AMI wire names. Times are epoch milliseconds taken from the
 * event's own Timestamp when Asterisk sends it, so durations never depend on how fast events were processed.
 */
import type { CrmEntityRef } from './intents.ts';

export type ChannelStateName = 'down' | 'reserved' | 'offhook' | 'dialing' | 'ring' | 'ringing' | 'up' | 'busy' | 'unknown';

export type DialStatus = 'ANSWER' | 'BUSY' | 'NOANSWER' | 'CANCEL' | 'CONGESTION' | 'CHANUNAVAIL' | 'DONTCALL' | 'TORTURE' | 'INVALIDARGS' | 'RINGING' | 'PROCEEDING' | 'PROGRESS' | string;

interface Base {
  /** Epoch ms. */
  at: number;
}

/** Facts about one channel, as carried by every channel-scoped event. */
export interface ChannelRef {
  channelId: string;
  linkedId: string;
  /** Channel name, e.g. PJSIP/101-0000002a or Local/102@from-internal-00000002;1 */
  name: string;
  callerNum?: string;
  exten?: string;
  context?: string;
  state?: ChannelStateName;
}

export interface ChannelNewEvent extends Base { type: 'channelNew'; channel: ChannelRef }
export interface ChannelStateEvent extends Base { type: 'channelState'; channel: ChannelRef }
/** Any other channel-scoped event: keeps the channel's Linkedid current (it changes on pickup and park retrieval). */
export interface ChannelSeenEvent extends Base { type: 'channelSeen'; channel: ChannelRef }

export interface DialBeginEvent extends Base {
  type: 'dialBegin';
  /** Absent when the PBX itself created the dialled channel (Originate's first leg, attended-transfer consult leg). */
  caller?: ChannelRef;
  dest: ChannelRef;
  dialString?: string;
}

export interface DialEndEvent extends Base {
  type: 'dialEnd';
  caller?: ChannelRef;
  dest: ChannelRef;
  status: DialStatus;
}

export interface BridgeEvent extends Base {
  type: 'bridgeEnter' | 'bridgeLeave';
  bridgeId: string;
  channel: ChannelRef;
}

export interface HangupEvent extends Base {
  type: 'hangup';
  channel: ChannelRef;
  /** Q.850 cause code as a string ('16', '17', '21', ...). */
  cause?: string;
}

/** Channel variables the machine cares about (recording file, DID). */
export interface VarSetEvent extends Base {
  type: 'varSet';
  channel: ChannelRef;
  /** bitrixCallId: the Bitrix24 CALL_ID a click-to-call Originate put on its channels (B24_CALL_ID). */
  name: 'recording' | 'did' | 'bitrixCallId';
  value: string;
}

/**
 * Bitrix24 started this call (click-to-call): it already has a Bitrix24 CALL_ID, so it must not be registered
 * again. `channelId` is the Originate's first channel (OriginateResponse), when Asterisk said which.
 */
export interface ClickToCallEvent extends Base {
  type: 'clickToCall';
  bitrixCallId: string;
  channelId?: string;
  extension?: string;
  bitrixUserId: number;
  number: string;
}

/**
 * The daemon is about to send a click-to-call Originate (committed before it is written): until a channel
 * carrying the CALL_ID, an OriginateResponse or a failure claims it, the click is pending. If nothing claims it
 * by `deadline` (the answer was lost with the AMI connection, the daemon restarted), a tick finishes it as failed.
 */
export interface ClickToCallStartedEvent extends Base {
  type: 'clickToCallStarted';
  bitrixCallId: string;
  bitrixUserId: number;
  number: string;
  extension: string;
  /** Epoch ms. */
  deadline: number;
  /** The CRM entity Bitrix24 bound its call to, when the click said. */
  crmEntity?: CrmEntityRef;
}

/** The passing of time, fed by the session while clicks are pending (the machine itself has no clock). */
export interface TickEvent extends Base { type: 'tick' }

/** The click-to-call Originate failed before any call existed (agent never answered, busy, no such user, ...). */
export interface ClickToCallFailedEvent extends Base {
  type: 'clickToCallFailed';
  bitrixCallId: string;
  extension?: string;
  bitrixUserId: number;
  number: string;
  reason: 'noanswer' | 'busy' | 'unavailable' | 'nouser' | 'failed';
  detail?: string;
  crmEntity?: CrmEntityRef;
}

export interface TransferEvent extends Base {
  type: 'transfer';
  /** The Linkedid of the call concerned (the transferee's / parkee's). */
  linkedId?: string;
  kind: 'blind' | 'attended' | 'pickup' | 'park' | 'unpark';
  /** The channel that stays with the external party (transferee / parkee) when known. */
  transfereeName?: string;
  /** Where it went: an extension for blind transfers, a parking space for park. */
  target?: string;
  /** The channel that took the call (pickup / retriever). */
  takerName?: string;
}

/** Live channels as listed by CoreShowChannels after a (re)connect: reconciles what happened while we were away. */
export interface SnapshotEvent extends Base {
  type: 'snapshot';
  /**
   * The channels known when the list was requested: only those can have ended while we were away. A channel
   * created after the request may be missing from the list without having hung up. Absent: all known channels.
   */
  knownBefore?: string[];
  /**
   * `ageMs`: how long the channel has existed (CoreShowChannel Duration), to date a call we join mid-way.
   * `variables`: the call facts its channel variables carry (read with Status alongside the list).
   */
  channels: Array<ChannelRef & { bridgeId?: string; ageMs?: number; variables?: Array<{ name: VarSetEvent['name']; value: string }> }>;
}

export type CallEvent =
  | ChannelNewEvent | ChannelStateEvent | ChannelSeenEvent | DialBeginEvent | DialEndEvent | BridgeEvent
  | HangupEvent | VarSetEvent | TransferEvent | SnapshotEvent | ClickToCallEvent | ClickToCallFailedEvent
  | ClickToCallStartedEvent | TickEvent;
