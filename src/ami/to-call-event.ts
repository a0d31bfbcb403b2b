/**
 * AMI → call events: the one place where Asterisk's event and field names meet the call machine's vocabulary.
 * Events the machine does not need return undefined (RTCP, CEL, Cdr, Newexten, …): most of the wire traffic
 * stops here, which keeps the state machine's share of the event budget small.
 */
import type { AmiMessage } from './message.ts';
import type { CallEvent, ChannelRef, ChannelStateName, SnapshotEvent, VarSetEvent } from '../calls/events.ts';

/** Event time: Asterisk's own `Timestamp:` (manager.conf timestampevents=yes) when present, else arrival time. */
export function eventTime(msg: AmiMessage): number {
  const ts = msg.fields['Timestamp'];
  if (ts !== undefined) {
    const seconds = Number(ts);
    if (Number.isFinite(seconds) && seconds > 0) return Math.round(seconds * 1000);
  }
  return msg.receivedAt;
}

const STATES: Record<string, ChannelStateName> = {
  Down: 'down', Rsrvd: 'reserved', OffHook: 'offhook', Dialing: 'dialing', Ring: 'ring', Ringing: 'ringing', Up: 'up', Busy: 'busy',
};

/** Reads a channel's facts, optionally from prefixed fields (`Dest`, `Transferee`, …). */
export function channelRef(f: Readonly<Record<string, string>>, prefix = ''): ChannelRef | undefined {
  const channelId = f[prefix + 'Uniqueid'];
  const name = f[prefix + 'Channel'];
  const linkedId = f[prefix + 'Linkedid'] ?? f[prefix + 'LinkedID'];
  if (!channelId || !name || !linkedId || channelId === 'none') return undefined;
  const ref: ChannelRef = { channelId, linkedId, name };
  const callerNum = f[prefix + 'CallerIDNum'];
  if (callerNum !== undefined) ref.callerNum = callerNum;
  const exten = f[prefix + 'Exten'];
  if (exten !== undefined) ref.exten = exten;
  const context = f[prefix + 'Context'];
  if (context !== undefined) ref.context = context;
  const state = f[prefix + 'ChannelStateDesc'];
  if (state !== undefined) ref.state = STATES[state] ?? 'unknown';
  return ref;
}

/** Variables that carry call facts; FreePBX and plain dialplans spell the DID differently. */
const RECORDING_VARS = new Set(['MIXMONITOR_FILENAME']);
const DID_VARS = new Set(['FROM_DID', '__FROM_DID', '_FROM_DID']);
/** Set (inherited) by the daemon's click-to-call Originate: ties every channel of the call to the Bitrix24 CALL_ID. */
export const CLICK_TO_CALL_VAR = 'B24_CALL_ID';
const CLICK_TO_CALL_VARS = new Set([CLICK_TO_CALL_VAR, `_${CLICK_TO_CALL_VAR}`, `__${CLICK_TO_CALL_VAR}`]);

function variableFact(variable: string): VarSetEvent['name'] | undefined {
  return RECORDING_VARS.has(variable) ? 'recording' : DID_VARS.has(variable) ? 'did'
    : CLICK_TO_CALL_VARS.has(variable) ? 'bitrixCallId' : undefined;
}

/**
 * What `Status` is asked for on calls joined mid-way (after a reconnect or a restart): they missed their
 * MixMonitorStart, DID and click-to-call VarSets. RECORDING_FILE is a dialplan's own name for the file
 * (FreePBX's sub-record): live, MixMonitor's own variable follows it; mid-way it is all there is.
 */
export const STATUS_VARIABLES = ['FROM_DID', 'RECORDING_FILE', 'MIXMONITOR_FILENAME', CLICK_TO_CALL_VAR];

/** One channel of a `Status` answer (asked with STATUS_VARIABLES) → the call facts its variables carry. */
export function varSetsFromStatus(item: AmiMessage): VarSetEvent[] {
  const f = item.fields;
  const channel = channelRef(f);
  if (!channel) return [];
  const out: VarSetEvent[] = [];
  for (const line of item.lists['Variable'] ?? []) {
    const eq = line.indexOf('=');
    const value = line.slice(eq + 1);
    if (eq <= 0 || !value || value === '(null)') continue;
    const variable = line.slice(0, eq);
    const name = variable === 'RECORDING_FILE' ? 'recording' : variableFact(variable);
    if (name) out.push({ type: 'varSet', at: eventTime(item), channel, name, value });
  }
  return out;
}

/** Channel events that only matter for noticing a Linkedid change. */
const SEEN_EVENTS = new Set(['NewConnectedLine', 'NewCallerid', 'Hold', 'Unhold', 'HangupRequest', 'SoftHangupRequest', 'MixMonitorStart']);

export function toCallEvent(msg: AmiMessage): CallEvent | undefined {
  if (msg.kind !== 'event') return undefined;
  const f = msg.fields;
  switch (msg.name) {
    case 'Newchannel': {
      const channel = channelRef(f);
      return channel && { type: 'channelNew', at: eventTime(msg), channel };
    }
    case 'Newstate': {
      const channel = channelRef(f);
      return channel && { type: 'channelState', at: eventTime(msg), channel };
    }
    case 'DialBegin':
    case 'DialEnd': {
      const dest = channelRef(f, 'Dest');
      if (!dest) return undefined;
      const caller = channelRef(f);
      const at = eventTime(msg);
      if (msg.name === 'DialBegin') {
        const dialString = f['DialString'];
        return { type: 'dialBegin', at, dest, ...(caller ? { caller } : {}), ...(dialString !== undefined ? { dialString } : {}) };
      }
      return { type: 'dialEnd', at, dest, status: f['DialStatus'] ?? '', ...(caller ? { caller } : {}) };
    }
    case 'BridgeEnter':
    case 'BridgeLeave': {
      const channel = channelRef(f);
      const bridgeId = f['BridgeUniqueid'];
      if (!channel || !bridgeId) return undefined;
      return { type: msg.name === 'BridgeEnter' ? 'bridgeEnter' : 'bridgeLeave', at: eventTime(msg), bridgeId, channel };
    }
    case 'Hangup': {
      const channel = channelRef(f);
      const cause = f['Cause'];
      return channel && { type: 'hangup', at: eventTime(msg), channel, ...(cause !== undefined ? { cause } : {}) };
    }
    case 'VarSet': {
      const name = variableFact(f['Variable'] ?? '');
      const channel = name && channelRef(f);
      return channel && name ? { type: 'varSet', at: eventTime(msg), channel, name, value: f['Value'] ?? '' } : undefined;
    }
    case 'BlindTransfer':
      return transfer(msg, 'blind', f['TransfereeLinkedid'], f['Extension']);
    case 'AttendedTransfer':
      return transfer(msg, 'attended', f['TransfereeLinkedid'] ?? f['OrigTransfererLinkedid'], f['TransferTargetCallerIDNum']);
    case 'Pickup':
      return transfer(msg, 'pickup', f['TargetLinkedid'], f['CallerIDNum']);
    case 'ParkedCall':
      return transfer(msg, 'park', f['ParkeeLinkedid'], f['ParkingSpace']);
    case 'UnParkedCall':
      return transfer(msg, 'unpark', f['ParkeeLinkedid'], f['RetrieverCallerIDNum']);
    default: {
      if (!SEEN_EVENTS.has(msg.name)) return undefined;
      const channel = channelRef(f);
      return channel && { type: 'channelSeen', at: eventTime(msg), channel };
    }
  }
}

function transfer(msg: AmiMessage, kind: 'blind' | 'attended' | 'pickup' | 'park' | 'unpark', linkedId: string | undefined, target: string | undefined): CallEvent {
  return { type: 'transfer', at: eventTime(msg), kind, ...(linkedId ? { linkedId } : {}), ...(target ? { target } : {}) };
}

/** CoreShowChannels' items (CoreShowChannel events) → a snapshot of the live channels. */
export function snapshotFromCoreShowChannels(items: readonly AmiMessage[], at: number): SnapshotEvent {
  const channels: SnapshotEvent['channels'] = [];
  for (const item of items) {
    if (item.name !== 'CoreShowChannel') continue;
    const ref = channelRef(item.fields);
    if (!ref) continue;
    const bridgeId = item.fields['BridgeId'] ?? item.fields['BridgeID'];
    const ageMs = durationMs(item.fields['Duration']);
    channels.push({ ...ref, ...(bridgeId ? { bridgeId } : {}), ...(ageMs !== undefined ? { ageMs } : {}) });
  }
  return { type: 'snapshot', at, channels };
}

/** CoreShowChannel's Duration is HH:MM:SS (the channel's age, not its talk time). */
function durationMs(value: string | undefined): number | undefined {
  const m = value ? /^(\d+):(\d{2}):(\d{2})$/.exec(value) : null;
  return m ? ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 : undefined;
}
