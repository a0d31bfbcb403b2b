/**
 * `npm run demo`: the daemon at work with nothing else installed. A bundled AMI simulator replays real Asterisk
 * 22 sessions (test/fixtures/ami) ten times faster than they happened, the daemon follows the calls, and a
 * bundled Bitrix24 emulator receives the requests. The daemon's own log shows each decision; at the end a table
 * shows what a manager would see in Bitrix24's call log.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.ts';
import { Daemon } from '../src/integration/daemon.ts';
import { createLogger } from '../src/log/logger.ts';
import { AmiSimulator } from '../test/fakes/ami-simulator.ts';
import { BitrixEmulator } from '../test/fakes/bitrix-emulator.ts';
import { createRecordings, PBX_MONITOR_DIR } from '../test/fakes/recordings.ts';

const FIXTURES = join(import.meta.dirname, '../test/fixtures/ami');
const SCENARIOS: Array<[string, string]> = [
  ['inbound-answered', 'a client calls the main number, Ivan (101) answers'],
  ['inbound-queue-answered', 'the sales queue rings everyone, Oleg (103) answers'],
  ['inbound-queue-abandoned', 'the sales queue rings everyone, the client gives up'],
  ['inbound-blind-transfer', 'Ivan answers and transfers the client to Maria (102)'],
  ['outbound-busy', 'Ivan calls a client who is busy'],
  ['concurrent-mix', 'five overlapping calls in 20 seconds'],
];
const SPEED = Number(process.env.DEMO_SPEED ?? 10);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'asterisk-bitrix24-demo-'));
  const bitrix = new BitrixEmulator();
  await bitrix.listen();
  const ami = new AmiSimulator({ speed: SPEED, secret: 'demo-secret' });
  await ami.listen();
  const traces = SCENARIOS.map(([name]) => join(FIXTURES, `${name}.jsonl`));
  createRecordings(join(dir, 'monitor'), traces);

  const config = parseConfig(`
ami: { host: 127.0.0.1, port: ${ami.port}, username: bx24, secret: demo-secret }
bitrix24: { webhook_url: "${bitrix.webhookUrl}", default_user_id: 1, rate_limit: { per_second: 50, burst: 50 } }
pbx:
  trunks: [provider]
  timezone: Europe/Moscow
  recordings: { pbx_dir: ${PBX_MONITOR_DIR}, local_dir: ${join(dir, 'monitor')} }
http: { enabled: false }
storage: { path: ${join(dir, 'state.sqlite')} }
customizations: { dir: ${join(dir, 'customizations')}, watch: false }
`, join(dir, 'config.yaml'));

  const out = process.stdout;
  out.write(`\nasterisk-bitrix24 demo — AMI simulator on :${ami.port} replaying ${SCENARIOS.length} recorded sessions at ${SPEED}× speed,\n`);
  out.write(`Bitrix24 emulator on ${bitrix.baseUrl} (users: 101 Ivan Petrov, 102 Maria Ivanova, 103 Oleg Smirnov)\n\n`);
  for (const [name, what] of SCENARIOS) out.write(`  • ${name}: ${what}\n`);
  out.write('\n');

  const log = createLogger({ level: 'info' });
  const daemon = new Daemon({ config, log });
  await daemon.start();
  ami.play(traces, { actionWaitMs: 100, gapMs: 500 });
  await daemon.amiClients[0]!.ready();
  await ami.done();
  await new Promise((r) => setTimeout(r, 50));
  for (const s of daemon.sessions) s.flush();
  await daemon.outbox.idle();
  const left = daemon.outbox.depth();
  const dead = daemon.outbox.deadLetters().length;
  await daemon.stop();

  const names = new Map(bitrix.users.map((u) => [u.ID, `${u.NAME} ${u.LAST_NAME}`.trim()]));
  const first = new Map(bitrix.users.map((u) => [u.ID, u.NAME]));
  const STATUS: Record<string, string> = { '200': 'answered', '304': 'missed', '486': 'busy', '603': 'declined', '603-S': 'cancelled', '404': 'invalid number', '480': 'unavailable' };
  out.write('\nWhat Bitrix24 now shows in its call log:\n\n');
  out.write(`  ${'#'.padEnd(3)}${'direction'.padEnd(10)}${'client'.padEnd(15)}${'line'.padEnd(13)}${'responsible'.padEnd(16)}${'result'.padEnd(11)}${'talk'.padEnd(6)}${'card shown to'.padEnd(20)}recording\n`);
  let n = 0;
  for (const call of bitrix.calls.values()) {
    n++;
    const f = call.finished;
    const shown = call.shownTo.map((id) => first.get(id) ?? id).join(', ');
    out.write(`  ${String(n).padEnd(3)}${(call.type === 2 ? 'incoming' : 'outgoing').padEnd(10)}${call.phoneNumber.padEnd(15)}${(call.lineNumber ?? '').padEnd(13)}`
      + `${(f ? names.get(f.userId) ?? String(f.userId) : '—').padEnd(16)}${(f ? STATUS[f.statusCode] ?? f.statusCode : 'open').padEnd(11)}`
      + `${(f ? `${f.duration}s` : '').padEnd(6)}${shown.padEnd(20)}${call.record ? call.record.filename : '—'}\n`);
  }
  const requests = bitrix.requests.length;
  out.write(`\n${bitrix.calls.size} Bitrix24 calls from ${requests} REST requests; outbox left: ${left}; dead letters: ${dead}\n`);
  out.write('Try it on a trace yourself: npm start -- replay test/fixtures/ami/inbound-attended-transfer.jsonl\n\n');
  await ami.close();
  await bitrix.close();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
