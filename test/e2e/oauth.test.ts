/**
 * The local-application mode Bitrix24's docs require for register/finish ("works only in the context of an
 * application"): the emulator refuses webhooks for them here. Tokens arrive through the daemon's install handler
 * or the CLI `auth` command, are refreshed when they expire, and calls that happen before the app is installed
 * wait instead of being lost.
 */
import { afterEach, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startHarness, type Harness } from '../support/e2e.ts';

let h: Harness | undefined;
afterEach(async () => { await h?.stop(); h = undefined; });

const ANSWERED = [
  'register #1 type=2 user=2 phone=+79161234567 line=74951234567 crm_create=1', 'show #1 users=2',
  'finish #1 user=2 status=200 duration=5', 'attachRecord #1 1795324160.126.wav',
];

async function install(h: Harness, body: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${h.daemon.http!.port}/bitrix24/install`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body,
  });
}

test('installed through the install handler (ONAPPINSTALL form): calls are registered in the application context', async () => {
  h = await startHarness({ oauth: true, bitrixOptions: { appContextOnly: true } });
  const t = h.bitrix.issueTokens();
  const res = await install(h, new URLSearchParams({
    event: 'ONAPPINSTALL', 'auth[access_token]': t.accessToken, 'auth[refresh_token]': t.refreshToken, 'auth[expires_in]': '3600',
    'auth[client_endpoint]': t.clientEndpoint, 'auth[member_id]': t.memberId, 'auth[domain]': t.domain,
  }).toString());
  expect(res.status).toBe(200);
  h.play('inbound-answered');
  await h.settle();
  expect(h.compact()).toEqual(ANSWERED);
  expect(h.logLines.join('')).not.toContain(t.accessToken);
});

test('an expired access token is refreshed once and the request goes through', async () => {
  h = await startHarness({ oauth: true, bitrixOptions: { appContextOnly: true } });
  const t = h.bitrix.issueTokens();
  await install(h, new URLSearchParams({ 'auth[access_token]': t.accessToken, 'auth[refresh_token]': t.refreshToken, 'auth[client_endpoint]': t.clientEndpoint, 'auth[domain]': t.domain }).toString());
  h.bitrix.expireAccessTokens();
  h.play('inbound-answered');
  await h.settle();
  expect(h.compact()).toEqual(ANSWERED);
  expect(h.bitrix.tokenRequests.filter((r) => r.grantType === 'refresh_token' && r.httpStatus === 200)).toHaveLength(1);
});

test('a forged install (tokens the portal does not confirm for this application) gets 400 and changes nothing', async () => {
  h = await startHarness({ oauth: true, bitrixOptions: { appContextOnly: true } });
  const t = h.bitrix.issueTokens();
  await install(h, new URLSearchParams({ 'auth[access_token]': t.accessToken, 'auth[refresh_token]': t.refreshToken, 'auth[client_endpoint]': t.clientEndpoint, 'auth[domain]': t.domain }).toString());
  const forged = await install(h, new URLSearchParams({
    'auth[access_token]': 'attacker-token-000', 'auth[refresh_token]': 'attacker-refresh-000', 'auth[client_endpoint]': 'http://127.0.0.1:9/rest/', 'auth[domain]': 'evil.example',
  }).toString());
  expect(forged.status).toBe(400);
  expect(await forged.json()).toMatchObject({ error: expect.stringMatching(/could not be asked|does not confirm/) });
  // the genuine tokens are still the ones in use
  h.play('inbound-answered');
  await h.settle();
  expect(h.compact()).toEqual(ANSWERED);
});

test('a malformed install request gets 400 and changes nothing', async () => {
  h = await startHarness({ oauth: true });
  const res = await install(h, 'auth[access_token]=only-half');
  expect(res.status).toBe(400);
  expect(await res.json()).toMatchObject({ error: expect.stringContaining('refresh_token') });
});

test('CLI auth: the admin pastes the authorization code; the daemon then works with the stored tokens', async () => {
  h = await startHarness({ oauth: true, bitrixOptions: { appContextOnly: true }, startDaemon: false });
  const config = join(h.dir, 'config.yaml');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(config, `ami: { host: 127.0.0.1, port: 1, username: u, secret: s }\n`
    + `bitrix24: { oauth: { client_id: ${h.bitrix.clientId}, client_secret: ${h.bitrix.clientSecret}, oauth_server: "${h.bitrix.baseUrl}" }, default_user_id: 1 }\n`
    + `storage: { path: ${join(h.dir, 'state.sqlite')} }\n`);
  const code = h.bitrix.issueAuthorizationCode();
  const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, '../../src/cli.ts'), 'auth', '--config', config, '--code', code], { env: { PATH: process.env.PATH ?? '' } });
    let text = '';
    child.stdout.on('data', (d) => (text += String(d)));
    child.stderr.on('data', (d) => (text += String(d)));
    child.on('close', (c) => resolve({ code: c, text }));
  });
  expect(out.text).toContain('authorized on');
  expect(out.code).toBe(0);
  await h.daemon.start();
  h.play('inbound-answered');
  await h.settle();
  expect(h.compact()).toEqual(ANSWERED);
});
