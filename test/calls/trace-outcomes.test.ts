/**
 * Every recorded call scenario through parser → adapter → call machine: the registrations, cards and finishes it
 * produces are what a PBX admin expects in Bitrix24, and they agree with the facts recorded in each trace's header.
 */
import { describe, expect, test } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FinishIntent, Intent, RegisterIntent } from '../../src/calls/intents.ts';
import { LAB_CONFIG, runTrace, traceHeader } from '../support/trace-machine.ts';

const DIR = join(import.meta.dirname, '../fixtures/ami');

interface RegSummary {
  reg: string;
  direction: string;
  number: string;
  did?: string;
  ext?: string;
  reason: string;
  shown: string[];
  hidden: string[];
  status?: string;
  finishExt?: string;
  duration?: number;
  record: boolean;
}

function summarize(intents: Intent[]): RegSummary[] {
  const regs = new Map<string, RegSummary>();
  for (const i of intents) {
    if (i.kind === 'callEnded') continue; // call-level: checked separately
    const id = `${i.callKey}/${i.regId}`;
    if (i.kind === 'register') {
      regs.set(id, { reg: i.regId, direction: i.direction, number: i.externalNumber, reason: i.reason, shown: [], hidden: [], record: false,
        ...(i.did ? { did: i.did } : {}), ...(i.extension ? { ext: i.extension } : {}) });
      continue;
    }
    const r = regs.get(id);
    if (!r) throw new Error(`${i.kind} before register for ${id}`);
    if (r.status !== undefined && i.kind !== 'attachRecord') throw new Error(`${i.kind} after finish for ${id}`);
    if (i.kind === 'show') r.shown.push(...i.extensions);
    if (i.kind === 'hide') r.hidden.push(...i.extensions);
    if (i.kind === 'finish') Object.assign(r, { status: i.status, finishExt: i.extension, duration: i.durationSec });
    if (i.kind === 'attachRecord') {
      if (r.status === undefined) throw new Error(`attachRecord before finish for ${id}`);
      r.record = true;
    }
  }
  return [...regs.values()];
}

type Row = [reg: string, ext: string | undefined, status: string, finishExt: string | undefined, talkSeconds: number, record: boolean];

/** What each scenario must produce: one row per Bitrix24 registration, in order. */
const EXPECTED: Record<string, Row[]> = {
  'inbound-answered': [['r0', '101', '200', '101', 5, true]],
  'inbound-answered-agent-hangs-up': [['r0', '101', '200', '101', 5, true]],
  'inbound-no-answer': [['r0', '101', '304', '101', 0, false]],
  'inbound-caller-abandons': [['r0', '101', '304', '101', 0, false]],
  'inbound-busy': [['r0', '101', '486', '101', 0, false]],
  'inbound-agent-rejects': [['r0', '101', '603', '101', 0, false]],
  'inbound-ringgroup': [['r0', '101', '200', '102', 6, true]],
  'inbound-queue-answered': [['r0', '101', '200', '103', 6, true]],
  'inbound-queue-abandoned': [['r0', '101', '304', '103', 0, false]],
  'inbound-forward-to-mobile': [['r0', '101', '200', '101', 5, true]],
  'inbound-call-pickup': [['r0', '101', '200', '102', 5, true]],
  'inbound-blind-transfer': [['r0', '101', '200', '101', 4, true], ['r1', '102', '200', '102', 5, true]],
  // 101 talked ~4 s, then spent ~2.5 s keying *2102 before the consult began: the caller was still bridged to 101.
  'inbound-attended-transfer': [['r0', '101', '200', '101', 7, true], ['r1', '102', '200', '102', 7, true]],
  'inbound-park-and-retrieve': [['r0', '101', '200', '101', 3, true], ['r1', '102', '200', '102', 5, true]],
  'outbound-answered': [['r0', '101', '200', '101', 4, true]],
  'outbound-no-answer': [['r0', '101', '603-S', '101', 0, false]],
  'outbound-busy': [['r0', '101', '486', '101', 0, false]],
  'outbound-invalid-number': [['r0', '102', '404', '102', 0, false]],
  'internal': [],
  'click-to-call-answered': [['r0', '101', '200', '101', 4, true]],
  // Nothing was dialled out: the click-to-call flow finishes the Bitrix24 call it was given (ONEXTERNALCALLSTART).
  'click-to-call-agent-no-answer': [],
  'click-to-call-local-channel': [['r0', '102', '200', '102', 6, true]],
  'actions-during-call': [['r0', '101', '200', '101', 15, true]],
  'asterisk-restart': [['r0', '101', '200', '101', 4, true]],
  // Joined 4 s after the answer: talk time counts from when we saw it; no MixMonitorStart was on the wire.
  'mid-call-connect': [['r0', '102', '200', '102', 10, false]],
  'concurrent-mix': [
    ['r0', '101', '200', '101', 14, true],
    ['r0', '102', '200', '102', 8, true],
    ['r0', '103', '200', '103', 6, true],
    ['r0', '101', '486', '103', 0, false],
    ['r0', '101', '200', '101', 3, true],
  ],
};

const traces = readdirSync(DIR).filter((f) => f.endsWith('.jsonl') && f !== 'actions-idle.jsonl').map((f) => f.replace('.jsonl', ''));

describe('call machine on every recorded trace', () => {
  test('every trace has an expectation', () => {
    expect(traces.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  test.each(traces)('%s', (name) => {
    const path = join(DIR, `${name}.jsonl`);
    const summary = summarize(runTrace(path));
    const rows = EXPECTED[name]!;
    // concurrent-mix: registrations come in start order A, B, C, D, E
    expect(summary.map((r) => [r.reg, r.ext, r.status, r.finishExt, r.duration, r.record]))
      .toEqual(rows.map(([reg, ext, status, fext, talk, rec]) => [reg, ext, status, fext, expect.closeTo(talk, 0) as unknown as number, rec]));

    // Cross-check with the facts recorded in the trace header.
    const header = traceHeader(path).expected;
    const calls = header.calls ?? (header.direction ? [header] : []);
    const r0s = summary.filter((r) => r.reg === 'r0');
    for (const [i, fact] of calls.entries()) {
      const reg = r0s[i];
      if (!reg) continue;
      expect(reg.direction).toBe(fact.direction);
      expect(reg.number).toBe(fact.external_number);
      if (fact.direction === 'incoming') expect(reg.did).toBe(fact.did);
    }
    for (const r of summary) {
      // every card shown is hidden again unless its owner answered
      const leftShown = r.shown.filter((x) => !r.hidden.includes(x));
      expect(leftShown.every((x) => x === r.finishExt && r.status === '200')).toBe(true);
      expect(r.status).toBeDefined();
    }
  });

  test('an internal call is registered on the caller when register_internal is on', () => {
    const summary = summarize(runTrace(join(DIR, 'internal.jsonl'), { ...LAB_CONFIG, registerInternal: true }));
    expect(summary.map((r) => [r.direction, r.ext, r.status, r.finishExt, r.duration, r.shown])).toEqual([['internal', '101', '200', '101', 3, []]]);
  });

  test('without a trunk list, non-extension endpoints are trunks (provider)', () => {
    const a = summarize(runTrace(join(DIR, 'inbound-queue-answered.jsonl'), { extensionPattern: '^\\d{2,5}$' }));
    const b = summarize(runTrace(join(DIR, 'inbound-queue-answered.jsonl')));
    expect(a).toEqual(b);
  });

  test('show_card=answered shows the card only to the agent who answered; never shows none', () => {
    const answered = summarize(runTrace(join(DIR, 'inbound-queue-answered.jsonl'), { ...LAB_CONFIG, showCard: 'answered' }));
    expect(answered.map((r) => [r.shown, r.hidden])).toEqual([[['103'], []]]);
    const never = runTrace(join(DIR, 'inbound-queue-answered.jsonl'), { ...LAB_CONFIG, showCard: 'never' });
    expect(never.filter((i) => i.kind === 'show' || i.kind === 'hide')).toEqual([]);
  });

  test('the queue shows the card to every ringing member and hides it from the others on answer', () => {
    const intents = runTrace(join(DIR, 'inbound-queue-answered.jsonl'));
    expect(intents.map((i) => i.kind === 'show' || i.kind === 'hide' ? `${i.kind}:${i.extensions.join(',')}` : i.kind))
      .toEqual(['register', 'show:101', 'show:102', 'show:103', 'hide:101,102', 'finish', 'attachRecord', 'callEnded']);
  });

  test('each registered call ends with one callEnded, last, saying whether anyone answered and who rang last', () => {
    const missed = runTrace(join(DIR, 'inbound-queue-abandoned.jsonl'));
    expect(missed.at(-1)).toMatchObject({ kind: 'callEnded', direction: 'incoming', answered: false, externalNumber: '+79037778899', lastRungExtension: '103', did: '74951234569' });
    expect(missed.filter((i) => i.kind === 'callEnded')).toHaveLength(1);
    const transfer = runTrace(join(DIR, 'inbound-blind-transfer.jsonl'));
    expect(transfer.filter((i) => i.kind === 'callEnded')).toEqual([expect.objectContaining({ answered: true, lastRungExtension: '102' })]);
    expect(runTrace(join(DIR, 'internal.jsonl'))).toEqual([]);
  });

  test('register carries the call start from the PBX clock and an unanswered leg never overwrites an answered one', () => {
    const intents = runTrace(join(DIR, 'inbound-forward-to-mobile.jsonl'));
    const finishes = intents.filter((i): i is FinishIntent => i.kind === 'finish');
    expect(finishes).toHaveLength(1);
    expect(finishes[0]!.status).toBe('200');
    const reg = intents.find((i): i is RegisterIntent => i.kind === 'register')!;
    expect(reg.startedAt).toBeLessThan(finishes[0]!.endedAt);
  });
});
