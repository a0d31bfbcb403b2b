import { afterEach, describe, expect, test } from '@jest/globals';
import { attachRecord, finishCall, hideCall, registerCall, showCall, uploadRecord, type RegisterCallParams } from '../../src/bitrix/telephony.ts';
import { rejectionOf, startRig, type Rig } from './setup.ts';

let rig: Rig;
afterEach(async () => {
  await rig?.close();
});

const MINUTE = 60_000;
const base: RegisterCallParams = { userId: 2, phoneNumber: '+79001234567', type: 2, callStartDate: '2026-03-07T10:20:30+03:00', lineNumber: '74950000000' };

describe('telephony.externalCall.register', () => {
  test('sends the documented wire params and maps the reply', async () => {
    rig = await startRig();
    rig.emu.entities.push({ CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 797, NAME: 'John Doe', ASSIGNED_BY_ID: 3, PHONES: ['89001234567'] });
    const res = await registerCall(rig.client, { ...base, crmCreate: 1, show: 0, externalCallId: 'a-1', addToChat: 0, crmSource: 'CALL' });
    expect(res).toEqual({ callId: expect.stringMatching(/^externalCall\./), crmCreatedEntities: [], crmEntityType: 'CONTACT', crmEntityId: 797 });
    expect(rig.emu.requests[0]?.params).toEqual({ USER_ID: 2, PHONE_NUMBER: '+79001234567', TYPE: 2, CALL_START_DATE: '2026-03-07T10:20:30+03:00',
      CRM_CREATE: 1, CRM_SOURCE: 'CALL', SHOW: 0, LINE_NUMBER: '74950000000', EXTERNAL_CALL_ID: 'a-1', ADD_TO_CHAT: 0 });
  });

  test('CRM_CREATE=1 for an unknown number creates a lead', async () => {
    rig = await startRig();
    const res = await registerCall(rig.client, { ...base, userId: undefined, userPhoneInner: '103', crmCreate: 1 });
    expect(res.crmCreatedLead).toEqual(expect.any(Number));
    expect(res.crmCreatedEntities).toEqual([{ entityType: 'LEAD', entityId: res.crmCreatedLead }]);
    expect(rig.emu.calls.get(res.callId)?.userId).toBe(4);
  });

  test.each([
    [{ userId: undefined }, 'USER_ID or USER_PHONE_INNER should be set'],
    [{ type: 7 as never }, 'Unknown TYPE'],
    [{ callStartDate: '2026-03-07 10:20:30' }, 'CALL_START_DATE should be in the ISO-8601 format'],
    [{ phoneNumber: 'anonymous' }, 'Unsupported phone number format'],
    [{ userId: 99 }, 'User is not found or is not active'],
  ])('validation %j → ERROR_CORE "%s"', async (patch, message) => {
    rig = await startRig();
    const err = await rejectionOf(registerCall(rig.client, { ...base, ...patch }));
    expect(err).toMatchObject({ code: 'E_BITRIX_PERMANENT', httpStatus: 400, bitrixCode: 'ERROR_CORE', description: message });
  });

  test('within 30 minutes the same keys return the existing CALL_ID, even after finish; later a new one', async () => {
    let now = Date.parse('2026-03-07T07:20:30Z');
    rig = await startRig({ now: () => now });
    const first = await registerCall(rig.client, base);
    now += 10 * MINUTE;
    // CRM fields and the start date are not part of the key.
    const again = await registerCall(rig.client, { ...base, callStartDate: '2026-03-07T10:30:30+03:00', crmEntityType: 'LEAD', crmEntityId: 5 });
    expect(again.callId).toBe(first.callId);
    await finishCall(rig.client, { callId: first.callId, userId: 2, duration: 10 });
    const afterFinish = await registerCall(rig.client, base);
    expect(afterFinish.callId).toBe(first.callId);
    // …so the second physical call's finish fails (the Itgrix report that led to EXTERNAL_CALL_ID).
    expect(await rejectionOf(finishCall(rig.client, { callId: afterFinish.callId, userId: 2, duration: 5 })))
      .toMatchObject({ bitrixCode: 'ERROR_CORE', description: 'Call is not found (call should be registered prior to finishing)' });
    const otherLine = await registerCall(rig.client, { ...base, lineNumber: '74951111111' });
    expect(otherLine.callId).not.toBe(first.callId);
    now += 21 * MINUTE;
    expect((await registerCall(rig.client, base)).callId).not.toBe(first.callId);
  });

  test('with appContextOnly (as the 2026 docs describe) a webhook gets WRONG_AUTH_TYPE, an E_BITRIX_AUTH', async () => {
    rig = await startRig({ appContextOnly: true });
    expect(await rejectionOf(registerCall(rig.client, base))).toMatchObject({ code: 'E_BITRIX_AUTH', httpStatus: 403, bitrixCode: 'WRONG_AUTH_TYPE' });
  });

  test('a distinct EXTERNAL_CALL_ID keeps two quick registrations apart', async () => {
    rig = await startRig();
    const a = await registerCall(rig.client, { ...base, externalCallId: '1710140185.1' });
    const b = await registerCall(rig.client, { ...base, externalCallId: '1710140190.7' });
    expect(b.callId).not.toBe(a.callId);
    await finishCall(rig.client, { callId: a.callId, userId: 2, duration: 3 });
    await finishCall(rig.client, { callId: b.callId, userId: 2, duration: 4 });
    expect(rig.emu.calls.get(b.callId)?.finished?.duration).toBe(4);
  });
});

describe('show / hide / finish', () => {
  test('show and hide take one user or an array; an unknown call answers false', async () => {
    rig = await startRig();
    const { callId } = await registerCall(rig.client, { ...base, show: 0 });
    expect(await showCall(rig.client, callId, [2, 3, 4])).toBe(true);
    expect(await hideCall(rig.client, callId, [3])).toBe(true);
    expect(rig.emu.requests[1]?.params).toEqual({ CALL_ID: callId, USER_ID: [2, 3, 4] });
    expect(rig.emu.requests[2]?.params).toEqual({ CALL_ID: callId, USER_ID: 3 });
    expect(rig.emu.calls.get(callId)).toMatchObject({ shownTo: [2, 3, 4], hiddenFrom: [3] });
    expect(await showCall(rig.client, 'externalCall.nope.1', [2])).toBe(false);
  });

  test('finish maps the reply; default status follows DURATION; unknown CALL_ID is the documented error', async () => {
    rig = await startRig();
    rig.emu.entities.push({ CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: 5, NAME: 'L', ASSIGNED_BY_ID: 2, PHONES: ['+79001234567'] });
    const { callId } = await registerCall(rig.client, { ...base, externalCallId: 'x-1' });
    const res = await finishCall(rig.client, { callId, userId: 3, duration: 0, failedReason: 'no answer', vote: 5, addToChat: 0 });
    expect(res).toEqual({ crmActivityId: expect.any(Number), callStatus: 0, callFailedCode: '304', externalCallId: 'x-1' });
    expect(rig.emu.requests[1]?.params).toEqual({ CALL_ID: callId, USER_ID: 3, DURATION: 0, FAILED_REASON: 'no answer', ADD_TO_CHAT: 0, VOTE: 5 });
    expect(await rejectionOf(finishCall(rig.client, { callId: 'externalCall.unknown.1', userId: 2, duration: 1 })))
      .toMatchObject({ kind: 'permanent', description: 'Call is not found (call should be registered prior to finishing)' });
  });
});

describe('attachRecord', () => {
  test('before finish it fails; after finish FILE_CONTENT attaches and a second call replaces it', async () => {
    rig = await startRig();
    const { callId } = await registerCall(rig.client, base);
    const content = Buffer.from('ID3 fake mp3 bytes');
    const early = await rejectionOf(uploadRecord(rig.client, { callId, filename: 'call.mp3', content }));
    expect(early).toMatchObject({ kind: 'permanent', httpStatus: 400, bitrixCode: '',
      description: 'Call is not found in the statistic table. It looks like it is not finished yet.' });
    await finishCall(rig.client, { callId, userId: 2, duration: 42 });
    const first = await uploadRecord(rig.client, { callId, filename: 'call.mp3', content });
    expect(first).toEqual({ fileId: expect.any(Number), via: 'inline' });
    expect(rig.emu.calls.get(callId)?.record).toMatchObject({ filename: 'call.mp3', via: 'content', content });
    await uploadRecord(rig.client, { callId, filename: 'call2.wav', content: Buffer.from('RIFF') });
    expect(rig.emu.calls.get(callId)?.record?.filename).toBe('call2.wav');
    expect(await rejectionOf(attachRecord(rig.client, { callId, filename: 'call.ogg', fileContentBase64: 'AAAA' })))
      .toMatchObject({ bitrixCode: 'ERROR_CORE', description: 'Wrong file extension. Only wav and mp3 are allowed' });
  });

  test('above the inline threshold: FILENAME only → uploadUrl → multipart field "file"', async () => {
    rig = await startRig();
    const { callId } = await registerCall(rig.client, base);
    await finishCall(rig.client, { callId, userId: 2, duration: 42 });
    const content = Buffer.alloc(64 * 1024, 7);
    const res = await uploadRecord(rig.client, { callId, filename: 'big.wav', content, inlineMaxBytes: 1024 });
    expect(res).toEqual({ fileId: expect.any(Number), via: 'uploadUrl' });
    expect(rig.emu.requests.slice(-2).map((r) => [r.method, r.params])).toEqual([
      ['telephony.externalCall.attachRecord', { CALL_ID: callId, FILENAME: 'big.wav' }],
      ['upload', { token: expect.any(String), filename: 'big.wav', size: 64 * 1024 }],
    ]);
    const record = rig.emu.calls.get(callId)?.record;
    expect(record).toMatchObject({ via: 'upload', filename: 'big.wav', fileId: res.fileId });
    expect(record?.content?.equals(content)).toBe(true);
  });

  test('RECORD_URL: a public URL is taken, a private one is refused like Bitrix24 does', async () => {
    rig = await startRig();
    const { callId } = await registerCall(rig.client, base);
    await finishCall(rig.client, { callId, userId: 2, duration: 42 });
    expect(await attachRecord(rig.client, { callId, filename: 'r.mp3', recordUrl: 'https://records.example.com/r.mp3' }))
      .toEqual({ fileId: expect.any(Number) });
    expect(await rejectionOf(attachRecord(rig.client, { callId, filename: 'r.mp3', recordUrl: 'http://192.168.1.10/r.mp3' })))
      .toMatchObject({ kind: 'permanent', description: 'Record URL resolves to a non-public address and was blocked.' });
  });
});
