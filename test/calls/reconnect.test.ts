/**
 * Reconnect and out-of-order cases found in review, on the real inbound-answered trace cut at a point, followed
 * by call events built by hand (the snapshot a CoreShowChannels answer would give, a late caller ID): no
 * recording shows these races, so the events after the cut are written here.
 */
import { expect, test } from '@jest/globals';
import { join } from 'node:path';
import type { CallEvent, ChannelRef } from '../../src/calls/events.ts';
import { stepAll, traceCallEvents, TRACE_EPOCH_MS } from '../support/trace-machine.ts';

const TRACE = join(import.meta.dirname, '../fixtures/ami/inbound-answered.jsonl');

/** The trace's call events up to (not including) the first event matching `stop`. */
function eventsUntil(stop: (e: CallEvent) => boolean): CallEvent[] {
  const all = traceCallEvents(TRACE);
  const cut = all.findIndex(stop);
  return cut < 0 ? all : all.slice(0, cut);
}

const run = (events: CallEvent[]) => stepAll(events);

const TRUNK = { channelId: '1795324160.126', linkedId: '1795324160.126', name: 'PJSIP/provider-00000043' };
const AGENT = { channelId: '1795324160.127', linkedId: '1795324160.126', name: 'PJSIP/101-00000044' };

test('a call that vanished while we were away ends at its last known event, not at the reconnect', () => {
  const talking = eventsUntil((e) => e.type === 'hangup' || (e.type === 'channelSeen' && e.at > TRACE_EPOCH_MS + 9000));
  const lastAt = talking[talking.length - 1]!.at;
  const { intents } = run([...talking, { type: 'snapshot', at: lastAt + 600_000, channels: [] }]);
  const finish = intents.find((i) => i.kind === 'finish')!;
  // answered at 4.015 s, last seen in the bridge at 4.016 s: the 10-minute outage is not talk time
  expect(finish).toMatchObject({ status: '200', extension: '101' });
  expect((finish as { durationSec: number }).durationSec).toBeLessThanOrEqual(1);
});

test('a channel created after CoreShowChannels was sent is not declared ended for being absent from the list', () => {
  const ringing = eventsUntil((e) => e.type === 'channelState' && e.channel.state === 'up');
  const { intents } = run([...ringing, { type: 'snapshot', at: ringing.at(-1)!.at + 10, channels: [TRUNK], knownBefore: [TRUNK.channelId] }]);
  expect(intents.map((i) => i.kind)).toEqual(['register', 'show']); // the agent's ringing leg (not asked about) goes on
});

test('a snapshot that still lists a channel we saw hang up does not resurrect the call', () => {
  const all = eventsUntil(() => false);
  const end = all.at(-1)!.at;
  const { intents, world } = run([...all, { type: 'snapshot', at: end + 5, channels: [{ ...TRUNK, bridgeId: 'b' }, { ...AGENT, bridgeId: 'b' }] }]);
  expect(intents.filter((i) => i.kind === 'register')).toHaveLength(1);
  expect(Object.keys(world.calls)).toEqual([]);
});

test('a caller ID that arrives after the channel (NewCallerid) is the number registered', () => {
  const events = eventsUntil(() => false);
  const first = events[0]!;
  if (first.type !== 'channelNew') throw new Error('the trace starts with Newchannel');
  const late: CallEvent[] = [
    { ...first, channel: { ...first.channel, callerNum: '' } },
    { type: 'channelSeen', at: first.at + 1, channel: { ...first.channel, callerNum: '+79161234567' } },
    ...events.slice(1),
  ];
  const register = run(late).intents.find((i) => i.kind === 'register')!;
  expect(register).toMatchObject({ externalNumber: '+79161234567', withheld: false });
});

/** What CoreShowChannels would list at the cut: each live channel as last seen, in its bridge. */
function listedAt(events: CallEvent[], at: number): CallEvent {
  const live = new Map<string, ChannelRef & { bridgeId?: string }>();
  for (const e of events) {
    const refs = 'channel' in e ? [e.channel] : e.type === 'dialBegin' || e.type === 'dialEnd' ? [e.dest, ...(e.caller ? [e.caller] : [])] : [];
    for (const ref of refs) {
      if (e.type === 'hangup') { live.delete(ref.channelId); continue; }
      const before = live.get(ref.channelId);
      live.set(ref.channelId, { ...before, ...Object.fromEntries(Object.entries(ref).filter(([, v]) => v !== undefined)) } as ChannelRef);
    }
    if (e.type === 'bridgeEnter') live.get(e.channel.channelId)!.bridgeId = e.bridgeId;
    if (e.type === 'bridgeLeave') delete live.get(e.channel.channelId)?.bridgeId;
  }
  return { type: 'snapshot', at, knownBefore: [], channels: [...live.values()] };
}

test('an outgoing call joined mid-way (its DialBegin never seen) is outgoing, to the number the agent dialled', () => {
  const all = traceCallEvents(join(import.meta.dirname, '../fixtures/ami/outbound-answered.jsonl'));
  const cut = all.findIndex((e) => e.type === 'bridgeEnter') + 2; // both legs bridged, the client talking
  const { intents } = stepAll([listedAt(all.slice(0, cut), all[cut]!.at), ...all.slice(cut)]);
  const register = intents.find((i) => i.kind === 'register');
  expect(register).toMatchObject({ direction: 'outgoing', externalNumber: '89161234567', extension: '101', trunk: 'provider' });
  expect(intents.filter((i) => i.kind === 'finish').map((i) => i.kind === 'finish' && [i.status, i.extension])).toEqual([['200', '101']]);
});

test('joined mid-way behind a dial macro (the agent channel at exten `s`): the number comes from the trunk leg', () => {
  const all = traceCallEvents(join(import.meta.dirname, '../fixtures/ami/outbound-answered.jsonl'));
  const cut = all.findIndex((e) => e.type === 'bridgeEnter') + 2;
  const listed = listedAt(all.slice(0, cut), all[cut]!.at) as Extract<CallEvent, { type: 'snapshot' }>;
  // FreePBX's Macro(dialout-trunk) leaves the agent channel at exten `s` (hand-edited: the lab PBX dials directly)
  const inMacro = { ...listed, channels: listed.channels.map((c) => (c.name.startsWith('PJSIP/101') ? { ...c, exten: 's' } : c)) };
  const register = stepAll([inMacro, ...all.slice(cut)]).intents.find((i) => i.kind === 'register');
  expect(register).toMatchObject({ direction: 'outgoing', externalNumber: '89161234567' });
});
