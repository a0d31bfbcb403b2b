/**
 * Every recorded call, replayed by the AMI simulator into the real daemon, produces exactly these Bitrix24
 * requests at the emulator (users: 101 → 2 Ivan Petrov, 102 → 3 Maria Ivanova, 103 → 4 Oleg Smirnov; default 1).
 * Lines read: register #n (the n-th Bitrix24 call), show/hide with the USER_ID array, finish with status and
 * talk seconds, attachRecord with the file.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { startHarness, type Harness } from '../support/e2e.ts';

const IN = (phone: string, line: string, user = 2) => `register #1 type=2 user=${user} phone=${phone} line=${line} crm_create=1`;

const EXPECTED: Record<string, string[]> = {
  'inbound-answered': [IN('+79161234567', '74951234567'), 'show #1 users=2', 'finish #1 user=2 status=200 duration=5', 'attachRecord #1 1795324160.126.wav'],
  'inbound-answered-agent-hangs-up': [IN('+79161234567', '74951234567'), 'show #1 users=2', 'finish #1 user=2 status=200 duration=5', 'attachRecord #1 1795324172.129.wav'],
  // unanswered: the card goes away, one missed finish on the agent who rang; the 44-byte header-only WAV is not attached
  'inbound-no-answer': [IN('+79035550011', '74951234567'), 'show #1 users=2', 'hide #1 users=2', 'finish #1 user=2 status=304 duration=0'],
  'inbound-caller-abandons': [IN('+79265550022', '74951234567'), 'show #1 users=2', 'hide #1 users=2', 'finish #1 user=2 status=304 duration=0'],
  'inbound-busy': [IN('+79161230033', '74951234567'), 'show #1 users=2', 'hide #1 users=2', 'finish #1 user=2 status=486 duration=0'],
  // SIP 603 reaches AMI as NOANSWER + cause 21: Bitrix24 gets "declined"
  'inbound-agent-rejects': [IN('+79161234567', '74951234567'), 'show #1 users=2', 'hide #1 users=2', 'finish #1 user=2 status=603 duration=0'],
  'inbound-ringgroup': [IN('+79161234567', '74951234568'), 'show #1 users=2,3,4', 'hide #1 users=2,4', 'finish #1 user=3 status=200 duration=6', 'attachRecord #1 1795324206.143.wav'],
  // queue members' doubled DialEnd CANCEL and the caller answered for MOH change nothing
  'inbound-queue-answered': [IN('+79169876543', '74951234569'), 'show #1 users=2,3,4', 'hide #1 users=2,3', 'finish #1 user=4 status=200 duration=6', 'attachRecord #1 1795324220.150.wav'],
  // the CDR says ANSWERED (the caller leg was up for MOH); nobody took it: missed, on the last agent rung
  'inbound-queue-abandoned': [IN('+79037778899', '74951234569'), 'show #1 users=2,3,4', 'hide #1 users=2,3,4', 'finish #1 user=4 status=304 duration=0'],
  // forwarded to a mobile: answered, on the agent whose line it was; 101's unanswered leg does not overwrite it
  'inbound-forward-to-mobile': [IN('+79161234567', '74951234570'), 'show #1 users=2', 'hide #1 users=2', 'finish #1 user=2 status=200 duration=5', 'attachRecord #1 1795324396.204.wav'],
  'inbound-call-pickup': [IN('+79161234567', '74951234567'), 'show #1 users=2', 'hide #1 users=2', 'show #1 users=3', 'finish #1 user=3 status=200 duration=5', 'attachRecord #1 1795324419.209.wav'],
  // each agent who talked has the call on their own Bitrix24 call; nothing is registered or finished twice
  'inbound-blind-transfer': [
    IN('+79161234567', '74951234567'), 'show #1 users=2', 'finish #1 user=2 status=200 duration=4',
    'register #2 type=2 user=3 phone=+79161234567 line=74951234567 crm_create=1', 'show #2 users=3', 'finish #2 user=3 status=200 duration=5',
    'attachRecord #1 1795324290.177.wav', 'attachRecord #2 1795324290.177.wav',
  ],
  'inbound-attended-transfer': [
    IN('+79161234567', '74951234567'), 'show #1 users=2',
    'register #2 type=2 user=3 phone=+79161234567 line=74951234567 crm_create=1', 'show #2 users=3',
    'finish #1 user=2 status=200 duration=7', 'finish #2 user=3 status=200 duration=7',
    'attachRecord #1 1795324308.182.wav', 'attachRecord #2 1795324308.182.wav',
  ],
  'inbound-park-and-retrieve': [
    IN('+79031112233', '74951234567'), 'show #1 users=2', 'finish #1 user=2 status=200 duration=3',
    'register #2 type=2 user=3 phone=+79031112233 line=74951234567 crm_create=1', 'show #2 users=3', 'finish #2 user=3 status=200 duration=5',
    'attachRecord #1 1795324431.215.wav', 'attachRecord #2 1795324431.215.wav',
  ],
  'outbound-answered': ['register #1 type=1 user=2 phone=+79161234567 line=provider crm_create=1', 'show #1 users=2', 'finish #1 user=2 status=200 duration=4', 'attachRecord #1 1795324249.164.wav'],
  'outbound-no-answer': ['register #1 type=1 user=2 phone=+79161234567 line=provider crm_create=1', 'show #1 users=2', 'hide #1 users=2', 'finish #1 user=2 status=603-S duration=0'],
  'outbound-busy': ['register #1 type=1 user=2 phone=+79035556677 line=provider crm_create=1', 'show #1 users=2', 'hide #1 users=2', 'finish #1 user=2 status=486 duration=0'],
  'outbound-invalid-number': ['register #1 type=1 user=3 phone=+79990000000 line=provider crm_create=1', 'show #1 users=3', 'hide #1 users=3', 'finish #1 user=3 status=404 duration=0'],
  // internal calls are not registered by default (pbx.register_internal)
  'internal': [],
  // an Originate from elsewhere: an ordinary outgoing call of the agent once the client is dialled
  'click-to-call-answered': ['register #1 type=1 user=2 phone=+79161234567 line=provider crm_create=1', 'show #1 users=2', 'finish #1 user=2 status=200 duration=4', 'attachRecord #1 1795324335.193.wav'],
  'click-to-call-local-channel': ['register #1 type=1 user=3 phone=+79161234567 line=provider crm_create=1', 'show #1 users=3', 'finish #1 user=3 status=200 duration=6', 'attachRecord #1 1795324381.199.wav'],
  // nothing was dialled out: only the click-to-call flow (ONEXTERNALCALLSTART's CALL_ID) can finish it
  'click-to-call-agent-no-answer': [],
  'actions-during-call': [IN('+79163334455', '74951234567'), 'show #1 users=2', 'finish #1 user=2 status=200 duration=15', 'attachRecord #1 1795326402.347.wav'],
  // the call ends before Asterisk restarts; the daemon reconnects to the restarted PBX
  'asterisk-restart': [IN('+79261239876', '74951234567'), 'show #1 users=2', 'finish #1 user=2 status=200 duration=4', 'attachRecord #1 1795326622.0.wav'],
  // joined 4 s after the answer through CoreShowChannels: talk time counts from then; the recording, announced
  // before we came, is read back with Status + Variables
  'mid-call-connect': [IN('+79165556677', '74951234569', 3), 'show #1 users=3', 'finish #1 user=3 status=200 duration=10', 'attachRecord #1 1795326466.357.wav'],
};

let h: Harness | undefined;
afterEach(async () => { await h?.stop(); h = undefined; });

describe('every recorded trace through the daemon reaches Bitrix24 as expected', () => {
  test.each(Object.keys(EXPECTED))('%s', async (name) => {
    h = await startHarness({ trace: name });
    await h.settle();
    expect(h.compact()).toEqual(EXPECTED[name]);
    expect(h.daemon.outbox.deadLetters()).toEqual([]);
  });

  test('concurrent-mix: five overlapping calls, each on its own Bitrix24 call and in its own order', async () => {
    h = await startHarness({ trace: 'concurrent-mix' });
    await h.settle();
    const lines = h.compact();
    const perCall = (n: number) => lines.filter((l) => l.includes(`#${n} `) || l.endsWith(`#${n}`));
    expect(perCall(1)).toEqual([IN('+79161112233', '74951234567'), 'show #1 users=2', 'finish #1 user=2 status=200 duration=14', 'attachRecord #1 1795324452.222.wav']);
    expect(perCall(2)).toEqual(['register #2 type=2 user=3 phone=+79035557788 line=74951234569 crm_create=1', 'show #2 users=3,4', 'hide #2 users=4', 'finish #2 user=3 status=200 duration=8', 'attachRecord #2 1795324454.224.wav']);
    expect(perCall(3)).toEqual(['register #3 type=1 user=4 phone=+74951112233 line=provider crm_create=1', 'show #3 users=4', 'finish #3 user=4 status=200 duration=6', 'attachRecord #3 1795324459.227.wav']);
    // D: every phone busy → one missed finish with status busy, no recording (header-only WAV)
    expect(perCall(4)).toEqual(['register #4 type=2 user=2 phone=+74957654321 line=74951234568 crm_create=1', 'show #4 users=2,3,4', 'hide #4 users=2,3,4', 'finish #4 user=4 status=486 duration=0']);
    expect(perCall(5)).toEqual(['register #5 type=2 user=2 phone=+79160001122 line=74951234567 crm_create=1', 'show #5 users=2', 'finish #5 user=2 status=200 duration=3', 'attachRecord #5 1795324470.241.wav']);
    expect(lines).toHaveLength(21);
  });

  test('register carries CALL_START_DATE with the zone, a unique EXTERNAL_CALL_ID and SHOW=0', async () => {
    h = await startHarness({ trace: 'inbound-blind-transfer' });
    await h.settle();
    const registers = h.telephony().filter((r) => r.method === 'register').map((r) => r.params);
    expect(registers.map((p) => p.EXTERNAL_CALL_ID)).toEqual(['pbx-1795324290.177-r0', 'pbx-1795324290.177-r1']);
    for (const p of registers) {
      expect(p.CALL_START_DATE).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$/);
      expect(p.SHOW).toBe(0);
    }
  });
});
