/**
 * `status` and `outbox list|retry|drop` as an admin runs them (real processes) against a running daemon and
 * then a stopped one: the health table, the dead letters, a retried request reaching Bitrix24.
 */
import { afterEach, expect, test } from '@jest/globals';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startRig, waitFor, type OpsRig } from './support.ts';
import { runCli } from '../support/cli.ts';

let rig: OpsRig | undefined;
afterEach(async () => { await rig?.stop(); rig = undefined; });

const cli = runCli;

const REJECT = { status: 400, error: 'ERROR_CORE', description: 'Unsupported phone number format' };

test('status of a running daemon, dead letters listed, one retried (Bitrix24 gets it), status of a stopped daemon, one dropped', async () => {
  rig = await startRig({ httpPort: await freePort() });
  const r = rig;
  const config = r.configFile;
  r.bitrix.failNext(2, REJECT, 'telephony.externalCall.register');
  for (const trace of ['inbound-answered', 'outbound-answered']) {
    r.play(trace);
    await r.ami.done();
  }
  // A dead register takes the rest of its call with it: 2 calls × (register, show, finish, attachRecord).
  await waitFor(() => r.daemon.outbox.deadLetters().length === 8, 15_000, 'eight dead letters');
  await r.daemon.outbox.idle();

  const up = await cli(['status', '--config', config]);
  expect(up.stderr).toBe('');
  expect(up.code).toBe(0);
  expect(up.stdout).toMatch(/^daemon: OK \(up \d+ s, http:\/\/127\.0\.0\.1:\d+\/healthz\)$/m);
  expect(up.stdout).toMatch(/^ {2}AMI pbx +connected, keepalive answered \d+ s ago$/m);
  expect(up.stdout).toMatch(/^ {2}Bitrix24 +ok/m);
  expect(up.stdout).toMatch(/^ {2}outbox +0 waiting, 8 dead letter\(s\)$/m);
  expect(up.stdout).toMatch(/^ {2}users +3 extension\(s\) mapped/m);
  expect(up.stdout).toContain('! 8 request(s) in the dead-letter list (asterisk-bitrix24 outbox list)');

  const list = await cli(['outbox', 'list', '--config', config]);
  expect(list.code).toBe(0);
  expect(list.stdout).toContain('8 dead letter(s)');
  const registers = list.stdout.split('\n').filter((l) => /^\s+\d+\s+register\s/.test(l));
  expect(registers).toHaveLength(2);
  expect(registers[0]).toContain('Unsupported phone number format');
  const first = registers[0]!.trim().split(/\s+/)[0]!;

  const registersBefore = r.bitrix.requests.filter((q) => /register/.test(q.method) && q.httpStatus === 200).length;
  const retry = await cli(['outbox', 'retry', first, '--config', config]);
  expect(retry.stdout).toContain('1 request(s) queued again');
  expect(retry.code).toBe(0);
  // The running daemon notices the row another process put back (no new call wakes it).
  await waitFor(() => r.bitrix.requests.filter((q) => /register/.test(q.method) && q.httpStatus === 200).length === registersBefore + 1, 15_000, 'the retried register');
  await r.daemon.outbox.idle();
  const left = r.daemon.outbox.deadLetters();
  expect(left.map((d) => String(d.id))).not.toContain(first);

  await r.daemon.stop();
  const down = await cli(['status', '--config', config]);
  expect(down.code).toBe(3);
  expect(down.stdout).toMatch(/^daemon: not running \(connection refused; asked http:\/\/127\.0\.0\.1:\d+\/healthz\)$/m);
  expect(down.stdout).toMatch(new RegExp(`^ {2}outbox +0 waiting, ${left.length} dead letter\\(s\\)$`, 'm'));
  expect(down.stdout).toMatch(/^ {2}calls pbx +0 in progress when it stopped$/m);
  expect(down.stdout).toContain(`! ${left.length} dead letter(s): asterisk-bitrix24 outbox list --config ${config}`);

  const missing = await cli(['outbox', 'drop', '999', '--config', config]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('no dead letter with ID 999');
  const one = await cli(['outbox', 'drop', String(left[0]!.id), '--config', config]);
  expect(one.stdout).toBe('1 dead letter(s) deleted\n');
  const rest = await cli(['outbox', 'drop', '--config', config]);
  expect(rest.stdout).toBe(`${left.length - 1} dead letter(s) deleted\n`);
  expect((await cli(['outbox', 'list', '--config', config])).stdout).toBe('no dead letters\n');
}, 60_000);

test('usage errors and a state file that does not exist', async () => {
  rig = await startRig({ start: false });
  const bad = await cli(['outbox', 'retry', 'abc', '--config', rig.configFile]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain(`ID must be a dead letter's number`);
  expect((await cli(['outbox', 'purge', '--config', rig.configFile])).code).toBe(2);
  expect((await cli(['status'])).stderr).toContain('status needs --config FILE');
  const config = join(rig.dir, 'other.yaml');
  writeFileSync(config, `ami: { username: u, secret: s, port: 1 }\nbitrix24: { webhook_url: "https://x.bitrix24.ru/rest/1/abc/", default_user_id: 1 }\nhttp: { enabled: false }\nstorage: { path: ${join(rig.dir, 'nowhere/state.sqlite')} }\n`);
  const res = await cli(['status', '--config', config]);
  expect(res.code).toBe(1);
  expect(res.stdout).toContain('daemon: not running (http.enabled is false; asked nothing)');
  expect(res.stderr).toContain(`E_STORE: no state database at ${join(rig.dir, 'nowhere/state.sqlite')}`);
  rmSync(config);
});
