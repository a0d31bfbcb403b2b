import { afterEach, describe, expect, test } from '@jest/globals';
import { BitrixError } from '../../src/bitrix/errors.ts';
import { WebhookAuth } from '../../src/bitrix/webhook-auth.ts';
import { DaemonError } from '../../src/errors.ts';
import { rejectionOf, startRig, type Rig } from './setup.ts';

let rig: Rig;
afterEach(async () => {
  await rig.close();
});

describe('BitrixClient over an incoming webhook', () => {
  test('a call is a JSON POST to <webhook>/<method>.json and the envelope is parsed', async () => {
    rig = await startRig();
    const res = await rig.client.call<{ ID: string; ADMIN: boolean }>('profile');
    expect(res.result).toEqual(expect.objectContaining({ ID: '1', ADMIN: true, NAME: 'Admin' }));
    expect(res.time).toEqual(expect.objectContaining({ start: expect.any(Number), date_start: expect.stringMatching(/\+00:00$/) }));
    expect(rig.emu.requests).toEqual([expect.objectContaining({ method: 'profile', httpStatus: 200 })]);
  });

  test('list replies carry total and next; nested JSON params arrive intact', async () => {
    rig = await startRig();
    rig.emu.users.push(...Array.from({ length: 60 }, (_, i) => ({ ID: 100 + i, NAME: `U${i}`, LAST_NAME: 'X', ACTIVE: true })));
    const res = await rig.client.call<unknown[]>('user.get', { FILTER: { ACTIVE: true }, start: 0 });
    expect(res.result).toHaveLength(50);
    expect(res.total).toBe(64);
    expect(res.next).toBe(50);
    expect(rig.emu.requests[0]?.params).toEqual({ FILTER: { ACTIVE: true }, start: 0 });
    const last = await rig.client.call<unknown[]>('user.get', { FILTER: { ACTIVE: true }, start: 50 });
    expect(last.result).toHaveLength(14);
    expect(last.next).toBeUndefined();
  });

  test('the webhook URL is accepted with or without the trailing slash', async () => {
    rig = await startRig();
    const bare = new WebhookAuth(rig.emu.webhookUrl.replace(/\/$/, ''));
    expect((await bare.endpoint()).baseUrl).toBe(rig.emu.webhookUrl);
    expect(String(bare)).toBe(`${rig.emu.baseUrl}/rest/1/***/`);
    expect(() => new WebhookAuth('https://portal.example/rest/abc/')).toThrow(DaemonError);
  });

  test('HTTP 500 is a retryable server error', async () => {
    rig = await startRig();
    rig.emu.failNext(1, '500');
    const err = await rejectionOf(rig.client.call('profile'));
    expect(err).toBeInstanceOf(BitrixError);
    expect(err).toMatchObject({ code: 'E_BITRIX_RETRYABLE', kind: 'server', retryable: true, httpStatus: 500, bitrixCode: 'INTERNAL_SERVER_ERROR', method: 'profile' });
    expect((await rig.client.call('profile')).result).toBeDefined();
  });

  test('QUERY_LIMIT_EXCEEDED (503) is a retryable rate limit and backs the limiter off globally', async () => {
    rig = await startRig();
    rig.emu.failNext(1, 'QUERY_LIMIT_EXCEEDED');
    const err = await rejectionOf(rig.client.call('profile'));
    expect(err).toMatchObject({ code: 'E_BITRIX_RETRYABLE', kind: 'rate-limit', retryable: true, httpStatus: 503, retryAfterMs: 1000 });
    // The penalty holds the next request back for about a second.
    const started = Date.now();
    await rig.client.call('scope');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  test('OPERATION_TIME_LIMIT (429) is retryable, waits for operating_reset_at, and pauses only that method', async () => {
    rig = await startRig();
    rig.emu.failNext(1, 'OPERATION_TIME_LIMIT', 'user.get');
    const before = Date.now();
    const err = await rejectionOf(rig.client.call('user.get'));
    expect(err).toMatchObject({ code: 'E_BITRIX_RETRYABLE', kind: 'operating-limit', retryable: true, httpStatus: 429, bitrixCode: 'OPERATION_TIME_LIMIT' });
    // The emulator's operating_reset_at is ~600 s ahead.
    expect(err.retryAfterMs).toBeGreaterThan(590_000);
    expect(err.retryAfterMs).toBeLessThanOrEqual(600_000 + (Date.now() - before) + 1000);
    await rig.client.call('profile'); // other methods are not held back
    let userGetDone = false;
    const pending = rig.client.call('user.get').then(() => (userGetDone = true), () => (userGetDone = true));
    await rig.client.call('scope');
    expect(userGetDone).toBe(false);
    expect(rig.limiter.pending).toBe(1);
    rig.limiter.close(); // rejects the paused waiter so the test can end
    await pending;
  });

  test('ERROR_CORE is permanent and names the method and the Bitrix24 description', async () => {
    rig = await startRig();
    const err = await rejectionOf(rig.client.call('telephony.externalCall.register', { PHONE_NUMBER: '+79001234567', TYPE: 2 }));
    expect(err).toMatchObject({ code: 'E_BITRIX_PERMANENT', kind: 'permanent', retryable: false, httpStatus: 400, bitrixCode: 'ERROR_CORE',
      description: 'USER_ID or USER_PHONE_INNER should be set' });
    expect(err.message).toBe('Bitrix24 telephony.externalCall.register: ERROR_CORE: USER_ID or USER_PHONE_INNER should be set (HTTP 400)');
  });

  test('an unknown method is ERROR_METHOD_NOT_FOUND (404), permanent', async () => {
    rig = await startRig();
    const err = await rejectionOf(rig.client.call('no.such.method'));
    expect(err).toMatchObject({ kind: 'permanent', httpStatus: 404, bitrixCode: 'ERROR_METHOD_NOT_FOUND' });
  });

  test('Bitrix24 down (connection refused) is a retryable network error; it works again once up', async () => {
    rig = await startRig();
    await rig.emu.setDown(true);
    const err = await rejectionOf(rig.client.call('profile'));
    expect(err).toMatchObject({ code: 'E_BITRIX_RETRYABLE', kind: 'network', retryable: true });
    expect(err.message).toBe('Bitrix24 profile: unreachable (ECONNREFUSED)');
    await rig.emu.setDown(false);
    expect((await rig.client.call('profile')).result).toBeDefined();
  });

  test('a dropped connection and a timeout are retryable network errors', async () => {
    rig = await startRig();
    rig.emu.failNext(1, 'network');
    expect(await rejectionOf(rig.client.call('profile'))).toMatchObject({ kind: 'network', retryable: true });
    rig.emu.failNext(1, 'hang');
    const err = await rejectionOf(rig.client.call('profile', {}, { timeoutMs: 200 }));
    expect(err).toMatchObject({ kind: 'network', retryable: true });
    expect(err.message).toMatch(/^Bitrix24 profile: timed out/);
  });

  test('a wrong webhook secret is an auth error whose message and log lines never show the secret', async () => {
    rig = await startRig({ webhookSecret: 'right-secret-value' }, {
      auth: (emu) => new WebhookAuth(`${emu.baseUrl}/rest/1/wrong-secret-value/`),
    });
    const err = await rejectionOf(rig.client.call('profile'));
    expect(err).toMatchObject({ code: 'E_BITRIX_AUTH', kind: 'auth', retryable: false, httpStatus: 401, bitrixCode: 'INVALID_CREDENTIALS' });
    await rig.emu.setDown(true);
    const netErr = await rejectionOf(rig.client.call('profile'));
    for (const text of [err.message, String(err.stack), netErr.message, JSON.stringify(netErr), String(netErr.cause), ...rig.lines]) {
      expect(text).not.toContain('wrong-secret-value');
    }
    expect(rig.lines.join('')).toContain('INVALID_CREDENTIALS');
  });

  test('a Bitrix24 description that echoes the webhook URL is masked to …/rest/1/***/method', async () => {
    rig = await startRig({ webhookSecret: 'echoed-secret-1234' });
    rig.emu.failNext(1, { error: 'ERROR_CORE', description: `cannot call ${rig.emu.webhookUrl}profile`, status: 400 });
    const err = await rejectionOf(rig.client.call('profile'));
    expect(err.message).toBe(`Bitrix24 profile: ERROR_CORE: cannot call ${rig.emu.baseUrl}/rest/1/***/profile (HTTP 400)`);
    expect(err.description).not.toContain('echoed-secret-1234');
  });
});
