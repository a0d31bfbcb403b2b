/**
 * The command line as an admin uses it, as a real process: config errors, `check` against a PBX and a portal,
 * `replay` of a recorded trace (prints requests, sends nothing).
 */
import { afterEach, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AmiSimulator } from '../fakes/ami-simulator.ts';
import { BitrixEmulator } from '../fakes/bitrix-emulator.ts';
import { FIXTURES } from '../support/e2e.ts';
import { runCli } from '../support/cli.ts';

let cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

const cli = runCli;

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ab24-cli-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a broken config: exit code 1 and file:line: key: message', async () => {
  const dir = tempDir();
  const file = join(dir, 'config.yaml');
  writeFileSync(file, 'ami:\n  host: 127.0.0.1\n  port: "five"\n  username: u\n  secret: s\nbitrix24:\n  webhook_url: https://x.bitrix24.ru/rest/1/abc/\n');
  const res = await cli(['run', '--config', file]);
  expect(res.code).toBe(1);
  expect(res.stderr).toContain(`E_CONFIG: `);
  expect(res.stderr).toContain(`${file}:3: ami.port: must be integer`);
  expect(res.stderr).toContain(`${file}:6: bitrix24: missing required key default_user_id`);
  expect(res.stderr).not.toContain('at '); // no stack trace for an admin's mistake
});

test('check: AMI login, Bitrix24 scopes, the extension map — and a clear ✘ for a wrong AMI secret', async () => {
  const dir = tempDir();
  const bitrix = new BitrixEmulator();
  await bitrix.listen();
  cleanup.push(() => bitrix.close());
  const ami = new AmiSimulator({ secret: 'right-secret' });
  await ami.listen();
  cleanup.push(() => ami.close());
  const write = (secret: string) => {
    const file = join(dir, `${secret.length}-${Date.now()}.yaml`);
    writeFileSync(file, `ami: { host: 127.0.0.1, port: ${ami.port}, username: bx24, secret: ${secret} }\n`
      + `bitrix24: { webhook_url: "${bitrix.webhookUrl}", default_user_id: 1 }\nstorage: { path: ${join(dir, 'state.sqlite')} }\n`);
    return file;
  };
  const ok = await cli(['check', '--config', write('right-secret')]);
  expect(ok.stdout).toContain('✔ AMI pbx at 127.0.0.1');
  expect(ok.stdout).toContain('✔ Bitrix24 credentials (incoming webhook)');
  expect(ok.stdout).toMatch(/✔ extension → user map: 3 user\(s\).*101=Ivan Petrov/);
  expect(ok.stdout).toContain('all checks passed');
  expect(ok.code).toBe(0);

  const bad = await cli(['check', '--config', write('wrong-secret')]);
  expect(bad.code).toBe(1);
  expect(bad.stdout).toMatch(/✘ AMI pbx at 127\.0\.0\.1:\d+ — .*(uthentication|login)/);
  expect(bad.stdout).not.toContain('wrong-secret');
  expect(bad.stdout + bad.stderr).not.toContain(bitrix.webhookSecret);
}, 30_000);

test('replay prints the requests a trace produces and sends nothing', async () => {
  const res = await cli(['replay', join(FIXTURES, 'inbound-queue-answered.jsonl')]);
  expect(res.code).toBe(0);
  const requests = res.stdout.split('\n').filter((l) => l.startsWith('→ ')).map((l) => l.split(' ')[1]);
  expect(requests).toEqual([
    'telephony.externalCall.register', 'telephony.externalCall.show', 'telephony.externalCall.hide',
    'telephony.externalCall.finish', 'telephony.externalCall.attachRecord',
  ]);
  expect(res.stdout).toContain('"USER_ID":[101,102,103]');
  expect(res.stdout).toContain('"STATUS_CODE":"200"');
});

test('hook sample | hook test: an integrator tries a script before a call reaches it', async () => {
  const dir = tempDir();
  const custom = join(dir, 'customizations');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(custom);
  writeFileSync(join(custom, 'process_phone_number.js'), `module.exports = (i) => ({ data: { phone: i.params.phone.replace(/^\\+7/, '8') }, state: 'success' });`);
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `ami: { username: u, secret: s }\nbitrix24: { webhook_url: "https://x.bitrix24.ru/rest/1/abc/", default_user_id: 1 }\ncustomizations: { dir: ${custom} }\n`);
  const sample = await cli(['hook', 'sample', 'process_phone_number']);
  expect(JSON.parse(sample.stdout)).toEqual({ params: { phone: expect.any(String) } });
  const input = join(dir, 'in.json');
  writeFileSync(input, JSON.stringify({ params: { phone: '+79161234567' } }));
  const res = await cli(['hook', 'test', 'process_phone_number', '--input', input, '--config', config]);
  expect(res.code).toBe(0);
  expect(res.stdout).toContain('89161234567');
  const list = await cli(['hook', 'list', '--config', config]);
  expect(list.stdout).toMatch(/process_phone_number\s+active\s+js/);
});
