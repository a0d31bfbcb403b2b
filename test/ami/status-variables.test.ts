/**
 * Status with Variables, as read for calls joined mid-way: the recorded answer of mid-call-connect (FROM_DID,
 * RECORDING_FILE, MIXMONITOR_FILENAME, one of them unset), plus one B24_CALL_ID line written here — the
 * recording predates the daemon's click-to-call variable.
 */
import { expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AmiParser } from '../../src/ami/parser.ts';
import { STATUS_VARIABLES, varSetsFromStatus } from '../../src/ami/to-call-event.ts';

const TRACE = join(import.meta.dirname, '../fixtures/ami/mid-call-connect.jsonl');

function recordedStatusItems(): string[] {
  return readFileSync(TRACE, 'utf8').split('\n').slice(1).filter(Boolean)
    .map((l) => JSON.parse(l) as { dir: string; raw: string })
    .filter((r) => r.dir === 'in' && r.raw.startsWith('Event: Status\r\n') && r.raw.includes('ActionID: mid-03-status-vars'))
    .map((r) => r.raw);
}

test('the recorded answer: DID and recording per channel, (null) skipped', () => {
  const items = recordedStatusItems();
  const facts = items.flatMap((raw) => new AmiParser().push(raw)).flatMap((m) => varSetsFromStatus({ ...m, receivedAt: 0 }));
  expect(facts.map((f) => [f.channel.channelId, f.name, f.value.replace(/^.*\//, '')])).toEqual([
    ['1795326466.357', 'did', '74951234569'],
    ['1795326466.357', 'recording', '1795326466.357.wav'],
    ['1795326466.357', 'recording', '1795326466.357.wav'],
    ['1795326466.359', 'did', '74951234569'],
    ['1795326466.359', 'recording', '1795326466.357.wav'],
  ]);
  expect(facts.some((f) => f.value === '(null)')).toBe(false);
});

test("B24_CALL_ID is asked for and read as the click-to-call's CALL_ID, not as a recording", () => {
  expect(STATUS_VARIABLES).toContain('B24_CALL_ID');
  const raw = recordedStatusItems()[0]!.replace('\r\n\r\n', '\r\nVariable: B24_CALL_ID=externalCall.77.1\r\n\r\n');
  const [msg] = new AmiParser().push(raw);
  const facts = varSetsFromStatus({ ...msg!, receivedAt: 0 });
  expect(facts.filter((f) => f.name === 'bitrixCallId').map((f) => f.value)).toEqual(['externalCall.77.1']);
  expect(facts.filter((f) => f.name === 'recording').map((f) => f.value)).not.toContain('externalCall.77.1');
});
