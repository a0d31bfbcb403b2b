import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from '@jest/globals';
import { parseInstallRequest } from '../../src/bitrix/install.ts';
import { OAuthAuth } from '../../src/bitrix/oauth-auth.ts';
import { exchangeAuthorizationCode } from '../../src/bitrix/oauth-token.ts';
import { JsonFileTokenStore, MemoryTokenStore } from '../../src/bitrix/token-store.ts';
import { DaemonError } from '../../src/errors.ts';
import type { BitrixEmulator } from '../fakes/bitrix-emulator.ts';
import { rejectionOf, startRig, type Rig } from './setup.ts';

let rig: Rig;
let auth: OAuthAuth;
let store: MemoryTokenStore;
afterEach(async () => {
  await rig?.close();
});

async function oauthRig(tokens?: (emu: BitrixEmulator) => ReturnType<BitrixEmulator['issueTokens']>): Promise<Rig> {
  return startRig({}, {
    auth: (emu) => {
      store = new MemoryTokenStore(tokens ? tokens(emu) : emu.issueTokens());
      auth = new OAuthAuth({ clientId: emu.clientId, clientSecret: emu.clientSecret, oauthServer: emu.baseUrl, store });
      return auth;
    },
  });
}

describe('OAuthAuth', () => {
  test('calls go to client_endpoint + method with auth=<access token> in the body', async () => {
    rig = await oauthRig();
    const res = await rig.client.call<{ INSTALLED: boolean }>('app.info');
    expect(res.result.INSTALLED).toBe(true);
    expect(rig.emu.requests).toEqual([expect.objectContaining({ method: 'app.info', httpStatus: 200 })]);
    expect(rig.emu.tokenRequests).toEqual([]);
  });

  test('expired_token → one refresh → the request is retried once with the new token, which is stored', async () => {
    rig = await oauthRig();
    const old = store.load()!;
    rig.emu.expireAccessTokens();
    const res = await rig.client.call('profile');
    expect(res.result).toBeDefined();
    expect(rig.emu.tokenRequests.map((t) => [t.grantType, t.httpStatus])).toEqual([['refresh_token', 200]]);
    expect(rig.emu.requests.map((r) => [r.method, r.httpStatus, r.error])).toEqual([['profile', 401, 'expired_token'], ['profile', 200, undefined]]);
    const saved = store.load()!;
    expect(saved.accessToken).not.toBe(old.accessToken);
    expect(saved.refreshToken).not.toBe(old.refreshToken);
    expect(saved.clientEndpoint).toBe(rig.emu.clientEndpoint);
    expect(saved.memberId).toBe(rig.emu.memberId);
  });

  test('concurrent requests that all meet expired_token share a single refresh', async () => {
    rig = await oauthRig();
    rig.emu.expireAccessTokens();
    const results = await Promise.all(Array.from({ length: 8 }, () => rig.client.call('profile')));
    expect(results).toHaveLength(8);
    expect(rig.emu.tokenRequests).toHaveLength(1);
    expect(rig.emu.requests.filter((r) => r.httpStatus === 200)).toHaveLength(8);
  });

  test('a token about to expire is refreshed before the call (no 401 round trip)', async () => {
    rig = await oauthRig((emu) => ({ ...emu.issueTokens(), expiresAt: Date.now() + 30_000 }));
    await Promise.all([rig.client.call('profile'), rig.client.call('scope')]);
    expect(rig.emu.tokenRequests).toHaveLength(1);
    expect(rig.emu.requests.every((r) => r.httpStatus === 200)).toBe(true);
  });

  test('a refused refresh (invalid_grant) is a permanent E_BITRIX_AUTH telling the admin to re-install, and it is sticky', async () => {
    rig = await oauthRig();
    rig.emu.expireAccessTokens();
    rig.emu.revokeRefreshTokens();
    const err = await rejectionOf(rig.client.call('profile'));
    expect(err).toMatchObject({ code: 'E_BITRIX_AUTH', kind: 'auth', retryable: false, bitrixCode: 'invalid_grant' });
    expect(err.message).toMatch(/re-install the local app in Bitrix24 .* or run `asterisk-bitrix24 auth`/);
    expect(err.message).not.toContain(rig.emu.clientSecret);
    // No second refresh attempt: later calls fail fast until new tokens are set.
    expect(await rejectionOf(rig.client.call('scope'))).toBe(err);
    expect(rig.emu.tokenRequests).toHaveLength(1);
    await auth.setTokens(rig.emu.issueTokens());
    expect((await rig.client.call('scope')).result).toEqual(['crm', 'telephony', 'user']);
  });

  test('a garbage access token is refreshed too (invalid_token)', async () => {
    rig = await oauthRig((emu) => ({ ...emu.issueTokens(), accessToken: 'not-a-token' }));
    await rig.client.call('profile');
    expect(rig.emu.requests.map((r) => r.error)).toEqual(['invalid_token', undefined]);
  });

  test('no stored tokens: E_BITRIX_AUTH saying the app is not installed', async () => {
    rig = await startRig({}, {
      auth: (emu) => new OAuthAuth({ clientId: emu.clientId, clientSecret: emu.clientSecret, oauthServer: emu.baseUrl, store: new MemoryTokenStore() }),
    });
    const err = await rejectionOf(rig.client.call('profile'));
    expect(err).toMatchObject({ code: 'E_BITRIX_AUTH' });
    expect(err.message).toMatch(/not installed yet/);
    expect(rig.emu.requests).toEqual([]);
  });

  test('webhook-only methods: event.bind needs the app context', async () => {
    rig = await oauthRig();
    await rig.client.call('event.bind', { event: 'ONEXTERNALCALLSTART', handler: 'https://pbx.example/b24/event' });
    const list = await rig.client.call<Array<{ event: string }>>('event.get');
    expect(list.result).toEqual([{ event: 'ONEXTERNALCALLSTART', handler: 'https://pbx.example/b24/event', auth_type: '0', offline: 0 }]);
    const webhook = await startRig();
    try {
      expect(await rejectionOf(webhook.client.call('event.get'))).toMatchObject({ kind: 'auth', bitrixCode: 'WRONG_AUTH_TYPE' });
    } finally {
      await webhook.close();
    }
  });
});

describe('exchangeAuthorizationCode', () => {
  test('trades a code for tokens; a used code is invalid_grant', async () => {
    rig = await oauthRig();
    const code = rig.emu.issueAuthorizationCode();
    const app = { clientId: rig.emu.clientId, clientSecret: rig.emu.clientSecret, oauthServer: rig.emu.baseUrl };
    const tokens = await exchangeAuthorizationCode({ ...app, code, now: 1_000_000 });
    expect(tokens).toMatchObject({ clientEndpoint: rig.emu.clientEndpoint, memberId: rig.emu.memberId, expiresAt: 1_000_000 + 3600_000,
      domain: new URL(rig.emu.baseUrl).host });
    await auth.setTokens(tokens);
    expect((await rig.client.call('scope')).result).toBeDefined();
    expect(await rejectionOf(exchangeAuthorizationCode({ ...app, code }))).toMatchObject({ code: 'E_BITRIX_AUTH', bitrixCode: 'invalid_grant' });
    expect(await rejectionOf(exchangeAuthorizationCode({ ...app, clientSecret: 'wrong', code: rig.emu.issueAuthorizationCode() })))
      .toMatchObject({ code: 'E_BITRIX_AUTH', bitrixCode: 'invalid_client' });
  });
});

describe('parseInstallRequest', () => {
  test('the UI-app POST (AUTH_ID, REFRESH_ID, DOMAIN, PROTOCOL, member_id)', () => {
    const t = parseInstallRequest({
      DOMAIN: 'portal.bitrix24.com', PROTOCOL: '1', LANG: 'en', APP_SID: 'sid', AUTH_ID: 'ahodg4h37n89vo17gbkgq0x1l825nnb5',
      AUTH_EXPIRES: '3600', REFRESH_ID: '2lg086mxijlpvwh0h7r4nl19udm4try5', member_id: 'm1', status: 'L',
    }, 1000);
    expect(t).toEqual({ accessToken: 'ahodg4h37n89vo17gbkgq0x1l825nnb5', refreshToken: '2lg086mxijlpvwh0h7r4nl19udm4try5',
      expiresAt: 1000 + 3600_000, clientEndpoint: 'https://portal.bitrix24.com/rest/', memberId: 'm1', domain: 'portal.bitrix24.com' });
    expect(parseInstallRequest({ DOMAIN: 'b24.local:8080', PROTOCOL: '0', AUTH_ID: 'aaaa', REFRESH_ID: 'bbbb' }, 0).clientEndpoint)
      .toBe('http://b24.local:8080/rest/');
  });

  test('the ONAPPINSTALL event, form-flat (auth[...]) and nested', () => {
    const flat = {
      event: 'ONAPPINSTALL', 'data[VERSION]': '1', ts: '1466439714',
      'auth[access_token]': 's6p6eclrvim6da22ft9ch94ekreb52lv', 'auth[expires_in]': '3600', 'auth[scope]': 'telephony',
      'auth[domain]': 'account.bitrix24.com', 'auth[server_endpoint]': 'https://oauth.bitrix.info/rest/', 'auth[status]': 'L',
      'auth[client_endpoint]': 'https://account.bitrix24.com/rest/', 'auth[member_id]': 'a223c6b3710f85df22e9377d6c4f7553',
      'auth[refresh_token]': '4s386p3q0tr8dy89xvmt96234v3dljg8', 'auth[application_token]': '51856fefc120afa4b628cc82d3935cce',
    };
    const expected = { accessToken: 's6p6eclrvim6da22ft9ch94ekreb52lv', refreshToken: '4s386p3q0tr8dy89xvmt96234v3dljg8',
      expiresAt: 5000 + 3600_000, clientEndpoint: 'https://account.bitrix24.com/rest/', memberId: 'a223c6b3710f85df22e9377d6c4f7553',
      domain: 'account.bitrix24.com', applicationToken: '51856fefc120afa4b628cc82d3935cce' };
    expect(parseInstallRequest(flat, 5000)).toEqual(expected);
    const nested = { event: 'ONAPPINSTALL', auth: Object.fromEntries(Object.entries(flat).filter(([k]) => k.startsWith('auth[')).map(([k, v]) => [k.slice(5, -1), v])) };
    expect(parseInstallRequest(nested, 5000)).toEqual(expected);
  });

  test('a request without tokens is rejected with E_WEBHOOK', () => {
    expect(() => parseInstallRequest({ event: 'ONAPPINSTALL', 'auth[domain]': 'x' })).toThrow(DaemonError);
    expect(() => parseInstallRequest({ DOMAIN: 'x' })).toThrow(/AUTH_ID/);
  });
});

describe('JsonFileTokenStore', () => {
  test('round-trips tokens in an owner-only file; a missing file loads as undefined', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'b24tok-'));
    try {
      const fileStore = new JsonFileTokenStore(join(dir, 'sub', 'tokens.json'));
      expect(await fileStore.load()).toBeUndefined();
      const tokens = { accessToken: 'a1', refreshToken: 'r1', expiresAt: 123, clientEndpoint: 'https://p/rest/', memberId: 'm', domain: 'p' };
      await fileStore.save(tokens);
      expect(await fileStore.load()).toEqual(tokens);
      expect((await stat(fileStore.path)).mode & 0o777).toBe(0o600);
      expect(JSON.parse(await readFile(fileStore.path, 'utf8'))).toEqual(tokens);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
