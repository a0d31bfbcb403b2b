/**
 * Fault tolerance with real processes and sockets: the daemon SIGKILLed in the middle of a burst of 200 calls
 * and started again; and the AMI connection cut while calls are up.
 */
import { afterEach, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AmiSimulator } from '../fakes/ami-simulator.ts';
import { BitrixEmulator } from '../fakes/bitrix-emulator.ts';
import { createRecordings } from '../fakes/recordings.ts';
import { AMI_SECRET, FIXTURES, startHarness, type Harness } from '../support/e2e.ts';
import { exited, killIfAlive, spawnDaemon } from '../support/cli.ts';

let cleanup: Array<() => unknown> = [];
let h: Harness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});


test('SIGKILL in the middle of a burst of 200 calls, restart: every call registered and finished exactly once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ab24-burst-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const bitrix = new BitrixEmulator();
  await bitrix.listen();
  cleanup.push(() => bitrix.close());
  const ami = new AmiSimulator({ speed: 1, secret: AMI_SECRET });
  await ami.listen();
  cleanup.push(() => ami.close());
  createRecordings(join(dir, 'monitor'), [join(FIXTURES, 'inbound-answered.jsonl')]);
  // 200 copies of a real answered call, at real speed: all ring at ~1 s, are answered at ~4 s, end at ~9 s.
  ami.play(join(FIXTURES, 'inbound-answered.jsonl'), { copies: 200, actionWaitMs: 100 });
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `
ami: { host: 127.0.0.1, port: ${ami.port}, username: bx24, secret: ${AMI_SECRET} }
bitrix24: { webhook_url: "${bitrix.webhookUrl}", default_user_id: 1, rate_limit: { per_second: 200, burst: 200 } }
pbx: { trunks: [provider], recordings: { attach: false } }
http: { enabled: false }
storage: { path: ${join(dir, 'state.sqlite')} }
customizations: { dir: ${join(dir, 'customizations')}, watch: false }
log: { level: warn }
`);
  const start = () => {
    const child = spawnDaemon(config);
    cleanup.push(() => killIfAlive(child));
    return child;
  };
  const first = start();
  await bitrix.waitFor((reqs) => reqs.filter((r) => /register$/i.test(r.method)).length >= 100, 20_000);
  first.kill('SIGKILL');
  await exited(first);
  const second = start();
  await bitrix.waitFor((reqs) => reqs.filter((r) => /finish$/i.test(r.method) && r.httpStatus === 200).length >= 200, 40_000);
  await ami.done();
  second.kill('SIGTERM');
  expect(await exited(second)).toBe(0);

  expect(bitrix.calls.size).toBe(200); // a register repeated after the crash got its CALL_ID back (EXTERNAL_CALL_ID)
  const finished = bitrix.requests.filter((r) => /finish$/i.test(r.method) && r.httpStatus === 200).map((r) => r.params.CALL_ID);
  expect(finished).toHaveLength(200);
  expect(new Set(finished).size).toBe(200);
  const calls = [...bitrix.calls.values()];
  expect(calls.every((c) => c.finished?.statusCode === '200' && c.finished.duration === 5 && c.finished.userId === 2)).toBe(true);
}, 90_000);

test('AMI cut while a call is up: reconnect within 5 s; the call that ended meanwhile is finished with what was known', async () => {
  h = await startHarness({ trace: 'inbound-answered', speed: 1 });
  const client = h.daemon.amiClients[0]!;
  await client.ready();
  await h.bitrix.waitFor((reqs) => reqs.some((r) => /show$/i.test(r.method)), 5000); // ringing
  const down = new Promise<number>((resolve) => client.once('disconnected', () => resolve(Date.now())));
  const up = new Promise<number>((resolve) => client.once('connected', () => resolve(Date.now())));
  h.ami.setSilent(true); // events meanwhile are lost, as when the link is down
  h.ami.dropConnections();
  await down;
  await h.ami.done(); // the call is answered and ends while we are away (~8 s)
  h.ami.setSilent(false); // Asterisk answers again
  const backSince = Date.now();
  const backAt = await up;
  expect(backAt - backSince).toBeLessThan(5000);
  await h.bitrix.waitFor((reqs) => reqs.some((r) => /finish$/i.test(r.method)), 5000);
  await h.daemon.outbox.idle();
  // It was ringing when we lost it: finished as missed on the agent who rang, the card taken away.
  expect(h.compact()).toEqual([
    'register #1 type=2 user=2 phone=+79161234567 line=74951234567 crm_create=1', 'show #1 users=2', 'hide #1 users=2',
    'finish #1 user=2 status=304 duration=0',
  ]);
}, 30_000);
