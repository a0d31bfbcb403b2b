/**
 * What the call state machine asks the outside world to do. Plain data, camelCase, no Bitrix24 wire names:
 * the integration layer turns each intent into Bitrix24 requests (after running customization hooks) through
 * the durable outbox.
 *
 * A call (one Asterisk Linkedid) produces one or more *registrations* (Bitrix24 calls, one CALL_ID each):
 * `r0` when the call starts ringing someone, and one more for every agent who takes the call over after it was
 * answered (transfer, pickup after answer, park/retrieve), so that each answered conversation is finished under
 * the agent who talked, and nothing is registered or finished twice.
 */
export type Direction = 'incoming' | 'outgoing' | 'internal';

/** Bitrix24 finish STATUS_CODE values the daemon uses (telephony.externalCall.finish docs). */
export type FinishStatus = '200' | '304' | '403' | '404' | '480' | '486' | '503' | '603' | '603-S' | 'OTHER';

interface IntentBase {
  /** The call's stable key: the Linkedid it was first seen with (Asterisk may change a channel's Linkedid later). */
  callKey: string;
  /** Which registration of the call this intent is about: 'r0', 'r1', ... */
  regId: string;
}

export interface RegisterIntent extends IntentBase {
  kind: 'register';
  direction: Direction;
  /** The external party as presented (inbound caller ID) or dialled (outbound); '' when withheld. */
  externalNumber: string;
  /** True for anonymous / empty caller ID: register it, but never create or match a CRM entity. */
  withheld: boolean;
  /** The DID (called office number) of an inbound call, when known. */
  did?: string;
  /** The trunk endpoint the call used. */
  trunk?: string;
  /** The extension the registration is made for (first agent rung, or the extension that placed the call). */
  extension?: string;
  /** For internal calls: the other extension. */
  peerExtension?: string;
  /** Epoch ms when the call started on the PBX (not when it was processed). */
  startedAt: number;
  /** Why this registration exists: the call itself, or an agent who took it over. */
  reason: 'call' | 'transfer' | 'pickup' | 'park' | 'forward';
  /** Click-to-call: Bitrix24 registered the call itself; this CALL_ID is used instead of registering again. */
  existingCallId?: string;
  /** Click-to-call: the Bitrix24 user who clicked (used when the extension has no user mapping). */
  bitrixUserId?: number;
  /** Click-to-call: the CRM entity Bitrix24 bound its call to (business processes run on it). */
  crmEntity?: CrmEntityRef;
}

/** A CRM entity as Bitrix24 names it: LEAD / CONTACT / COMPANY / DEAL and its id. */
export interface CrmEntityRef {
  type: string;
  id: number;
}

export interface ShowIntent extends IntentBase {
  kind: 'show';
  extensions: string[];
}

export interface HideIntent extends IntentBase {
  kind: 'hide';
  extensions: string[];
}

export interface FinishIntent extends IntentBase {
  kind: 'finish';
  /** The agent the call is finished under: who talked; for a missed call, the responsible (last agent who rang). Absent: the default user. */
  extension?: string;
  /** Talk seconds (answer → hang-up or hand-over); ringing and queueing time excluded. 0 when unanswered. */
  durationSec: number;
  status: FinishStatus;
  answered: boolean;
  /** Q.850 cause of the leg that decided the outcome, for logs and hooks. */
  hangupCause?: string;
  /** Epoch ms when the conversation ended. */
  endedAt: number;
  /** The Bitrix24 user to finish under when known directly (click-to-call's clicking user). */
  bitrixUserId?: number;
  /** A reason shown in Bitrix24 for a call that failed (FAILED_REASON). */
  failedReason?: string;
  /**
   * Click-to-call / callback outcome, for robots that move deals by it: positive = the client answered,
   * negative = the client was not reached, neutral = the agent did not answer.
   */
  outcome?: 'positive' | 'negative' | 'neutral';
}

export interface AttachRecordIntent extends IntentBase {
  kind: 'attachRecord';
  /**
   * Recording paths as the PBX wrote them, in the order MixMonitor started them (the integration layer maps
   * PBX → daemon paths and attaches the first one that holds audio: a 44-byte WAV is only a header).
   */
  paths: string[];
}

/**
 * The whole call is over (after its last finish): what the CRM side needs — a task for a missed call, closing
 * the tasks of a caller who got through, updating the entities created for it.
 */
export interface CallEndedIntent extends IntentBase {
  kind: 'callEnded';
  direction: Direction;
  /** Some registration of the call was answered. */
  answered: boolean;
  externalNumber: string;
  withheld: boolean;
  did?: string;
  /** The last agent whose phone rang (missed-call owner policy `last_rung`). */
  lastRungExtension?: string;
  startedAt: number;
  endedAt: number;
}

export type Intent = RegisterIntent | ShowIntent | HideIntent | FinishIntent | AttachRecordIntent | CallEndedIntent;
export type IntentKind = Intent['kind'];
