/**
 * The daemon as systemd runs it — a real process — killed with SIGKILL between a call's register and its
 * finish, then started again: the call is finished exactly once, on the same Bitrix24 call, and a SIGTERM stops
 * the daemon cleanly (exit code 0).
 */
import { afterEach, expect, test } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AmiSimulator } from '../fakes/ami-simulator.ts';
import { BitrixEmulator } from '../fakes/bitrix-emulator.ts';
import { AMI_SECRET, FIXTURES } from '../support/e2e.ts';
import { exited, killIfAlive, spawnDaemon } from '../support/cli.ts';

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

function startDaemon(config: string, output: string[]): ChildProcess {
  const child = spawnDaemon(config, output);
  cleanup.push(() => killIfAlive(child));
  return child;
}


test('SIGKILL between register and finish, restart: finished once on the same Bitrix24 call', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ab24-crash-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const bitrix = new BitrixEmulator();
  await bitrix.listen();
  cleanup.push(() => bitrix.close());
  // Real time (Timestamp headers and the wall clock agree, as on a real PBX): the call rings 3 s and talks 5 s,
  // long enough to kill and restart the daemon inside it.
  const ami = new AmiSimulator({ speed: 1, secret: AMI_SECRET });
  await ami.listen();
  cleanup.push(() => ami.close());
  ami.play(join(FIXTURES, 'inbound-answered.jsonl'), { actionWaitMs: 100 });
  const monitor = join(dir, 'monitor/2026/11/22');
  mkdirSync(monitor, { recursive: true });
  writeFileSync(join(monitor, '1795324160.126.wav'), Buffer.alloc(80044));
  utimesSync(join(monitor, '1795324160.126.wav'), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `
ami: { host: 127.0.0.1, port: ${ami.port}, username: bx24, secret: ${AMI_SECRET} }
bitrix24: { webhook_url: "${bitrix.webhookUrl}", default_user_id: 1 }
pbx:
  trunks: [provider]
  recordings: { pbx_dir: /var/spool/asterisk/monitor, local_dir: ${join(dir, 'monitor')} }
http: { enabled: false }
storage: { path: ${join(dir, 'state.sqlite')} }
customizations: { dir: ${join(dir, 'customizations')}, watch: false }
`);
  const out: string[] = [];
  const first = startDaemon(config, out);
  await bitrix.waitFor((reqs) => reqs.some((r) => /register/i.test(r.method)), 15_000);
  first.kill('SIGKILL');
  expect(await exited(first)).toBe('SIGKILL');
  expect(bitrix.requests.some((r) => /finish/i.test(r.method))).toBe(false);

  const second = startDaemon(config, out);
  await bitrix.waitFor((reqs) => reqs.some((r) => /attachRecord/i.test(r.method)), 20_000);
  const methods = bitrix.requests.filter((r) => r.httpStatus === 200).map((r) => r.method.replace('telephony.externalCall.', ''));
  expect(methods.filter((m) => m === 'finish')).toHaveLength(1);
  expect(bitrix.calls.size).toBe(1); // a register repeated after the crash got the same CALL_ID back (EXTERNAL_CALL_ID)
  const call = [...bitrix.calls.values()][0]!;
  expect(call.finished).toMatchObject({ userId: 2, duration: 5, statusCode: '200' });
  expect(call.records).toHaveLength(1);

  second.kill('SIGTERM');
  expect(await exited(second)).toBe(0);
  expect(out.join('')).toMatch(/SIGTERM received: stopping[\s\S]*daemon stopped/);
}, 60_000);
