/**
 * The daemon as systemd runs it (Type=notify, WatchdogSec=): a real process, with NOTIFY_SOCKET pointing at a
 * stand-in for systemd's notification socket. READY=1 after start, WATCHDOG=1 only while the AMI keepalive is
 * answered, STOPPING=1 on SIGTERM. And the unit file passes `systemd-analyze verify`.
 */
import { afterEach, expect, test } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AMI_SECRET } from '../support/e2e.ts';
import { startProcessFakes, waitFor } from './support.ts';

const ROOT = join(import.meta.dirname, '../..');
const CLI = join(ROOT, 'src/cli.ts');
const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

let cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, lines: string[]): ChildProcess {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let partial = '';
  const take = (d: Buffer) => {
    const parts = (partial + String(d)).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  cleanup.push(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  return child;
}

const canNotify = has('systemd-notify') && has('python3');
(canNotify ? test : test.skip)('READY=1, WATCHDOG=1 only while AMI answers its keepalive, STOPPING=1 on SIGTERM', async () => {
  const { dir, bitrix, ami } = await startProcessFakes('ab24-sd-', cleanup);
  const socketPath = join(dir, 'notify.sock');
  const notes: string[] = [];
  run('python3', [join(ROOT, 'test/fakes/notify-socket.py'), socketPath], { PATH: process.env.PATH ?? '' }, notes);
  await waitFor(() => notes.includes('LISTENING'), 10_000, 'the notify socket');

  const config = join(dir, 'config.yaml');
  writeFileSync(config, `
ami: { host: 127.0.0.1, port: ${ami.port}, username: bx24, secret: ${AMI_SECRET}, keepalive_interval_ms: 200, keepalive_timeout_ms: 300, reconnect_max_delay_ms: 200 }
bitrix24: { webhook_url: "${bitrix.webhookUrl}", default_user_id: 1 }
http: { enabled: false }
storage: { path: ${join(dir, 'state.sqlite')} }
customizations: { dir: ${join(dir, 'customizations')}, watch: false }
`);
  const log: string[] = [];
  // WatchdogSec=0.6 s: a feed every 200 ms.
  const daemon = run(process.execPath, [CLI, 'run', '--config', config],
    { PATH: process.env.PATH ?? '', NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '600000' }, log);
  await waitFor(() => notes.filter((n) => n.startsWith('WATCHDOG=1')).length >= 2, 15_000, 'watchdog feeds');
  const ready = notes.findIndex((n) => n.includes('READY=1'));
  expect(ready).toBeGreaterThan(0);
  expect(notes[ready]).toContain(`MAINPID=${daemon.pid}`);
  expect(notes.findIndex((n) => n.startsWith('WATCHDOG=1'))).toBeGreaterThan(ready);

  // A half-open PBX: Pings go unanswered, the link is dropped, reconnects get no banner.
  ami.setSilent(true);
  await waitFor(() => log.some((l) => l.includes('watchdog: not fed')), 15_000, 'the watchdog to be withheld');
  const fedBefore = notes.filter((n) => n.startsWith('WATCHDOG=1')).length;
  await waitFor(() => notes.some((n) => n.startsWith('STATUS=watchdog withheld: AMI pbx')), 5000, 'the withheld status');
  // The property under test is an absence over time: three watchdog periods (200 ms each) pass without a feed
  // (at most one was already on its way when the check failed).
  const withheldAt = Date.now();
  await waitFor(() => Date.now() - withheldAt > 600, 5000, 'three watchdog periods');
  expect(notes.filter((n) => n.startsWith('WATCHDOG=1')).length).toBeLessThanOrEqual(fedBefore + 1);

  ami.setSilent(false);
  ami.dropConnections();
  await waitFor(() => log.some((l) => l.includes('watchdog: AMI is alive again')), 15_000, 'the watchdog to resume');
  const fedAgain = notes.filter((n) => n.startsWith('WATCHDOG=1')).length;
  await waitFor(() => notes.filter((n) => n.startsWith('WATCHDOG=1')).length > fedAgain, 5000, 'feeds after recovery');

  daemon.kill('SIGTERM');
  const code = await new Promise((resolve) => daemon.once('exit', (c, s) => resolve(c ?? s)));
  expect(code).toBe(0);
  await waitFor(() => notes.some((n) => n.startsWith('STOPPING=1')), 5000, 'STOPPING=1');
  const stopping = notes.findIndex((n) => n.startsWith('STOPPING=1'));
  expect(notes.slice(stopping + 1).filter((n) => n.startsWith('WATCHDOG=1'))).toEqual([]);
}, 60_000);

test('without NOTIFY_SOCKET the daemon sends nothing and logs nothing about systemd', async () => {
  const { SdNotify } = await import('../../src/ops/sd-notify.ts');
  const { silentLogger } = await import('../../src/log/logger.ts');
  const n = new SdNotify({ log: silentLogger(), env: {} });
  expect(n.enabled).toBe(false);
  expect(n.watchdogMs).toBeUndefined();
  expect(await n.send('READY=1')).toBe(false);
  const wrongPid = new SdNotify({ log: silentLogger(), env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid + 1) } });
  expect(wrongPid.watchdogMs).toBeUndefined();
  const ours = new SdNotify({ log: silentLogger(), env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid) } });
  expect(ours.watchdogMs).toBe(30_000);
});

const canVerify = has('systemd-analyze');
if (!canVerify) process.stderr.write('skipping the unit file check: systemd-analyze is not installed (apt-get install systemd)\n');
(canVerify ? test : test.skip)('the unit file passes systemd-analyze verify, without a warning', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ab24-unit-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const unit = readFileSync(join(ROOT, 'systemd/asterisk-bitrix24.service'), 'utf8');
  expect(unit).toMatch(/^Type=notify$/m);
  expect(unit).toMatch(/^WatchdogSec=30$/m);
  expect(unit).toMatch(/^NotifyAccess=all$/m);
  // verify checks that ExecStart exists: point it at this checkout's launcher instead of /opt/asterisk-bitrix24.
  const file = join(dir, 'asterisk-bitrix24.service');
  writeFileSync(file, unit.replaceAll('/opt/asterisk-bitrix24/', `${ROOT}/`));
  const res = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  expect(res.stderr.trim()).toBe('');
  expect(res.status).toBe(0);
  // ...and the check would fail on a typo.
  writeFileSync(file, unit.replaceAll('/opt/asterisk-bitrix24/', `${ROOT}/`).replace('ProtectHome=yes', 'ProtectHome=maybe'));
  expect(spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' }).stderr).toMatch(/:\d+: .*maybe/);
});
