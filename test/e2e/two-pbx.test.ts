/** Several PBXes in one daemon: `ami` as a list; each call carries its PBX's name, nothing is shared by mistake. */
import { afterEach, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import { Daemon } from '../../src/integration/daemon.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { AmiSimulator } from '../fakes/ami-simulator.ts';
import { BitrixEmulator } from '../fakes/bitrix-emulator.ts';
import { createRecordings } from '../fakes/recordings.ts';
import { FIXTURES } from '../support/e2e.ts';

const cleanup: Array<() => unknown> = [];
afterEach(async () => { for (const fn of cleanup.splice(0).reverse()) await fn(); });

test('two PBXes, two traces at once: each call registered once, under its own PBX', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ab24-two-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const bitrix = new BitrixEmulator();
  await bitrix.listen();
  cleanup.push(() => bitrix.close());
  const east = new AmiSimulator({ secret: 'east-secret' });
  const west = new AmiSimulator({ secret: 'west-secret' });
  for (const sim of [east, west]) { await sim.listen(); cleanup.push(() => sim.close()); }
  const traces = { east: 'inbound-answered', west: 'outbound-busy' };
  createRecordings(join(dir, 'monitor'), Object.values(traces).map((t) => join(FIXTURES, `${t}.jsonl`)));
  east.play(join(FIXTURES, `${traces.east}.jsonl`), { actionWaitMs: 150 });
  west.play(join(FIXTURES, `${traces.west}.jsonl`), { actionWaitMs: 150 });
  const config = parseConfig(`
ami:
  - { name: east, host: 127.0.0.1, port: ${east.port}, username: bx24, secret: east-secret }
  - { name: west, host: 127.0.0.1, port: ${west.port}, username: bx24, secret: west-secret, pbx: { extension_pattern: '^1\\d\\d$' } }
bitrix24: { webhook_url: "${bitrix.webhookUrl}", default_user_id: 1, rate_limit: { per_second: 100, burst: 100 } }
pbx: { trunks: [provider], recordings: { local_dir: ${join(dir, 'monitor')} } }
http: { enabled: false }
storage: { path: ${join(dir, 'state.sqlite')} }
customizations: { dir: ${join(dir, 'c')}, watch: false }
`, join(dir, 'config.yaml'));
  const daemon = new Daemon({ config, log: silentLogger() });
  await daemon.start();
  cleanup.push(() => daemon.stop());
  await Promise.all(daemon.amiClients.map((c) => c.ready()));
  await Promise.all([east.done(), west.done()]);
  await Promise.all(daemon.amiClients.map((c) => c.action('Ping')));
  await new Promise((r) => setImmediate(r));
  for (const s of daemon.sessions) s.flush();
  await daemon.outbox.idle();

  const registers = bitrix.requests.filter((r) => /register$/i.test(r.method)).map((r) => [r.params.EXTERNAL_CALL_ID, Number(r.params.TYPE)]); // numbers arrive as strings when batched
  expect(registers.sort()).toEqual([['east-1795324160.126-r0', 2], ['west-1795324276.170-r0', 1]]);
  const finishes = [...bitrix.calls.values()].map((c) => [c.externalCallId, c.finished?.statusCode]).sort();
  expect(finishes).toEqual([['east-1795324160.126-r0', '200'], ['west-1795324276.170-r0', '486']]);
});
