import { afterEach, describe, expect, test } from '@jest/globals';
import { toPhpQuery } from '../../src/bitrix/php-query.ts';
import { TELEPHONY_METHODS, finishCallWire, parseFinishResult, parseRegisterResult, registerCallWire, showHideWire } from '../../src/bitrix/telephony.ts';
import { parsePhpQuery } from '../fakes/bitrix-emulator.ts';
import { rejectionOf, startRig, type Rig } from './setup.ts';

let rig: Rig;
afterEach(async () => {
  await rig?.close();
});

const register = (externalCallId: string) => registerCallWire({
  userId: 2, phoneNumber: '+7 (900) 123-45-67', type: 2, callStartDate: '2026-03-07T10:20:30+03:00', lineNumber: '74951234567', externalCallId,
});

describe('toPhpQuery', () => {
  test('nested keys, indexed arrays, booleans, and values PHP parse_str reads back', () => {
    const params = { FIELDS: { TITLE: 'John&Martin', PHONE: [{ VALUE: '+7 900', VALUE_TYPE: 'WORK' }] }, USER_ID: [1, 2], SHOW: true, NONE: null };
    const qs = toPhpQuery(params);
    expect(qs).toBe('FIELDS[TITLE]=John%26Martin&FIELDS[PHONE][0][VALUE]=%2B7%20900&FIELDS[PHONE][0][VALUE_TYPE]=WORK&USER_ID[0]=1&USER_ID[1]=2&SHOW=1');
    expect(parsePhpQuery(qs)).toEqual({ FIELDS: { TITLE: 'John&Martin', PHONE: [{ VALUE: '+7 900', VALUE_TYPE: 'WORK' }] }, USER_ID: ['1', '2'], SHOW: '1' });
    expect(toPhpQuery({ CALL_ID: '$result[reg][CALL_ID]' })).toBe('CALL_ID=%24result%5Breg%5D%5BCALL_ID%5D');
  });
});

describe('BitrixClient.batch', () => {
  test('register, show and finish in one batch, chained with $result[reg][CALL_ID]', async () => {
    rig = await startRig();
    const res = await rig.client.batch({
      reg: { method: TELEPHONY_METHODS.register, params: register('1710140185.18441') },
      show: { method: TELEPHONY_METHODS.show, params: showHideWire('$result[reg][CALL_ID]', [2, 3]) },
      fin: { method: TELEPHONY_METHODS.finish, params: finishCallWire({ callId: '$result[reg][CALL_ID]', userId: 2, duration: 95, statusCode: '200' }) },
    }, { halt: true });
    expect(res.errors).toEqual({});
    expect(res.skipped).toEqual([]);
    const reg = parseRegisterResult(res.results.reg);
    expect(reg.callId).toMatch(/^externalCall\.[0-9a-f]{32}\.\d+$/);
    expect(res.results.show).toBe(true);
    expect(parseFinishResult(res.results.fin)).toEqual({ callStatus: 1, callFailedCode: '200', externalCallId: '1710140185.18441' });
    const call = rig.emu.calls.get(reg.callId)!;
    expect(call.shownTo).toEqual([2, 3]);
    expect(call.finished).toMatchObject({ userId: 2, duration: 95, statusCode: '200' });
    // One HTTP request, three method calls logged individually.
    expect(rig.emu.requests.map((r) => [r.method, r.viaBatch ?? false])).toEqual([
      ['batch', false], [TELEPHONY_METHODS.register, true], [TELEPHONY_METHODS.show, true], [TELEPHONY_METHODS.finish, true],
    ]);
    expect(rig.emu.requests[3]?.params.CALL_ID).toBe(reg.callId);
    expect(rig.emu.requests[2]?.params.USER_ID).toEqual(['2', '3']);
  });

  test('per-command errors are classified; halt stops the rest, which are reported as skipped', async () => {
    rig = await startRig();
    const commands = {
      bad: { method: TELEPHONY_METHODS.register, params: { PHONE_NUMBER: '+79001234567', TYPE: 2 } },
      fin: { method: TELEPHONY_METHODS.finish, params: { CALL_ID: '$result[bad][CALL_ID]', USER_ID: 2 } },
      who: { method: 'profile' },
    };
    const halted = await rig.client.batch(commands, { halt: true });
    expect(Object.keys(halted.errors)).toEqual(['bad']);
    expect(halted.errors.bad).toMatchObject({ method: TELEPHONY_METHODS.register, kind: 'permanent', bitrixCode: 'ERROR_CORE',
      description: 'USER_ID or USER_PHONE_INNER should be set' });
    expect(halted.skipped).toEqual(['fin', 'who']);

    const all = await rig.client.batch(commands, { halt: false });
    expect(Object.keys(all.errors)).toEqual(['bad', 'fin']);
    // Like Bitrix24, an unresolved reference leaves a non-string CALL_ID behind.
    expect(all.errors.fin).toMatchObject({ bitrixCode: 'INVALID_ARGUMENT', description: 'CALL_ID must be a string' });
    expect(all.results.who).toEqual(expect.objectContaining({ ID: '1' }));
  });

  test('list results bring result_total / result_next; OPERATION_TIME_LIMIT inside a batch pauses that method', async () => {
    rig = await startRig();
    rig.emu.users.push(...Array.from({ length: 55 }, (_, i) => ({ ID: 100 + i, NAME: 'N', LAST_NAME: 'L', ACTIVE: true })));
    rig.emu.failNext(1, 'OPERATION_TIME_LIMIT', 'crm.duplicate.findbycomm');
    const res = await rig.client.batch({
      users: { method: 'user.get', params: { FILTER: { ACTIVE: true } } },
      dup: { method: 'crm.duplicate.findbycomm', params: { type: 'PHONE', values: ['+79001234567'] } },
    });
    expect(res.totals).toEqual({ users: 59 });
    expect(res.next).toEqual({ users: 50 });
    expect(res.errors.dup).toMatchObject({ kind: 'operating-limit', retryable: true });
    let done = false;
    void rig.client.call('crm.duplicate.findbycomm', { type: 'PHONE', values: ['1'] }).then(() => (done = true), () => (done = true));
    await rig.client.call('profile');
    expect(done).toBe(false);
  });

  test('more than 50 commands are refused before sending; a nested batch is refused by Bitrix24', async () => {
    rig = await startRig();
    const many = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`c${i}`, { method: 'profile' }]));
    expect(await rejectionOf(rig.client.batch(many))).toMatchObject({ code: 'E_BITRIX_PERMANENT', bitrixCode: 'ERROR_BATCH_LENGTH_EXCEEDED' });
    expect(rig.emu.requests).toEqual([]);
    const nested = await rig.client.batch({ inner: { method: 'batch', params: { cmd: { a: 'profile' } } } });
    expect(nested.errors.inner).toMatchObject({ bitrixCode: 'ERROR_BATCH_METHOD_NOT_ALLOWED' });
  });

  test('a batch-level failure (HTTP 500) throws for the whole batch', async () => {
    rig = await startRig();
    rig.emu.failNext(1, '500');
    expect(await rejectionOf(rig.client.batch({ a: { method: 'profile' } }))).toMatchObject({ method: 'batch', kind: 'server', retryable: true });
  });
});
