/**
 * Click-to-call when Asterisk's answer to Originate is lost (AMI connection dropped, action timed out, daemon
 * restarted): the click is pending in the machine's world until a channel carrying its B24_CALL_ID claims it, or
 * its deadline passes. The call is the recorded click-to-call-answered trace; its Originate carried no
 * B24_CALL_ID (recorded before the daemon set one), so the one VarSet that would carry it is written here, right
 * after the agent's channel appears — where Asterisk sets an Originate's variables.
 */
import { expect, test } from '@jest/globals';
import { join } from 'node:path';
import type { BridgeEvent, CallEvent } from '../../src/calls/events.ts';
import type { Intent } from '../../src/calls/intents.ts';
import { stepAll, traceCallEvents, TRACE_EPOCH_MS } from '../support/trace-machine.ts';

const TRACE = join(import.meta.dirname, '../fixtures/ami/click-to-call-answered.jsonl');
const CALL_ID = 'externalCall.5d1c0b3a.1795324335';

/** The trace with the click committed first and, when `withVariable`, the agent channel's B24_CALL_ID VarSet. */
function clickEvents(withVariable: boolean, deadline: number): CallEvent[] {
  const events = traceCallEvents(TRACE);
  const first = events.findIndex((e) => e.type === 'channelNew')!;
  const agent = (events[first] as Extract<CallEvent, { type: 'channelNew' }>).channel;
  const started: CallEvent = {
    type: 'clickToCallStarted', at: events[0]!.at - 1, bitrixCallId: CALL_ID, bitrixUserId: 2, number: '89161234567', extension: '101', deadline,
  };
  const variable: CallEvent = { type: 'varSet', at: agent ? events[first]!.at : 0, channel: agent, name: 'bitrixCallId', value: CALL_ID };
  return [started, ...events.slice(0, first + 1), ...(withVariable ? [variable] : []), ...events.slice(first + 1)];
}

const run = (events: CallEvent[]): Intent[] => stepAll(events).intents;

const brief = (intents: Intent[]) => intents.map((i) => [i.kind, i.kind === 'register' ? i.existingCallId ?? 'new'
  : i.kind === 'finish' ? `${i.status} user=${i.bitrixUserId ?? '-'} ext=${i.extension ?? '-'}` : '']);

test('OriginateResponse lost: the channel carrying B24_CALL_ID claims the click, which is finished with talk time for the clicking user', () => {
  const events = clickEvents(true, TRACE_EPOCH_MS + 60_000);
  const intents = run([...events, { type: 'tick', at: TRACE_EPOCH_MS + 3_600_000 }]);
  expect(brief(intents)).toEqual([
    ['register', CALL_ID],
    ['finish', '200 user=2 ext=101'],
    ['attachRecord', ''],
  ]);
});

test('without the variable, the call is followed as an ordinary outgoing call and the click fails at its deadline, once', () => {
  const events = clickEvents(false, TRACE_EPOCH_MS + 1000);
  const end = events[events.length - 1]!.at;
  const intents = run([...events, { type: 'tick', at: end + 1 }, { type: 'tick', at: end + 2 }]);
  expect(brief(intents)).toEqual([
    ['register', 'new'], // the call Asterisk made is registered like any outgoing call…
    ['show', ''],
    ['finish', '200 user=- ext=101'],
    ['attachRecord', ''],
    ['callEnded', ''],
    ['register', CALL_ID], // …and the click nothing claimed ends Bitrix24's call as failed at its deadline
    ['finish', 'OTHER user=2 ext=101'],
  ]);
  const failed = intents.find((i) => i.kind === 'finish' && i.status === 'OTHER');
  expect(failed).toMatchObject({ failedReason: expect.stringMatching(/never reported how the Originate went/) });
});

test('a tick before the deadline changes nothing; a CALL_ID already finished is not claimed again by a late variable', () => {
  const deadline = TRACE_EPOCH_MS + 1000;
  const started = clickEvents(false, deadline)[0]!;
  expect(run([started, { type: 'tick', at: deadline - 1 }])).toEqual([]);
  const late = clickEvents(true, deadline).slice(1);
  const intents = run([started, { type: 'tick', at: deadline }, ...late]);
  expect(brief(intents).filter(([kind]) => kind === 'register')).toEqual([['register', CALL_ID], ['register', 'new']]);
});

test('joined mid-way (AMI was down, or the daemon restarted): the snapshot carries B24_CALL_ID, so the call is the click — not a second registration', () => {
  const events = traceCallEvents(TRACE);
  // Away from the Originate until both legs are bridged: the reconnect's snapshot (CoreShowChannels, with the
  // variables Status read) is all the daemon learns of that part.
  const bridged = events.findIndex((e) => e.type === 'bridgeEnter') + 2;
  const agent = { channelId: '1795324335.193', linkedId: '1795324335.193', name: 'PJSIP/101-00000067', callerNum: '89161234567', state: 'up' as const };
  const trunk = { channelId: '1795324337.194', linkedId: '1795324335.193', name: 'PJSIP/provider-00000068', state: 'up' as const };
  const bridgeId = (events[bridged - 1] as BridgeEvent).bridgeId;
  const at = events[bridged]!.at;
  const snapshot: CallEvent = {
    type: 'snapshot', at, knownBefore: [], channels: [
      { ...agent, bridgeId, ageMs: 8000, variables: [{ name: 'bitrixCallId', value: CALL_ID }, { name: 'recording', value: '/var/spool/asterisk/monitor/2026/11/22/1795324335.193.wav' }] },
      { ...trunk, bridgeId, ageMs: 5000 },
    ],
  };
  const started = clickEvents(false, at + 60_000)[0]!;
  const intents = stepAll([started, snapshot, ...events.slice(bridged), { type: 'tick', at: at + 3_600_000 }]).intents;
  expect(brief(intents)).toEqual([
    ['register', CALL_ID], // Bitrix24's own: nothing is sent for it, and no card (the agent is already talking)
    ['finish', '200 user=2 ext=101'],
    ['attachRecord', ''],
  ]);
  // The same variable arriving only after the call was registered as an ordinary one does not take the click
  // (Bitrix24 would never hear of it again): the click ends at its deadline.
  const late = stepAll([started, { ...snapshot, channels: snapshot.channels.map(({ variables: _, ...c }) => c) } as CallEvent,
    { type: 'varSet', at: at + 1, channel: agent, name: 'bitrixCallId', value: CALL_ID }, ...events.slice(bridged), { type: 'tick', at: at + 3_600_000 }]).intents;
  expect(brief(late).filter(([kind]) => kind === 'register' || kind === 'finish')).toEqual([
    ['register', 'new'], ['finish', '200 user=- ext=101'], ['register', CALL_ID], ['finish', 'OTHER user=2 ext=101'],
  ]);
});
