/**
 * A CrmService wired like the daemon wires it: real config parsing (the `crm:` YAML under test), a real
 * BitrixClient over HTTP to the Bitrix24 emulator, real SQLite in a temp dir, real hook scripts through the
 * HookRunner, and the real UserDirectory (extensions 101–103 → users 2–4, from the emulator's user.get).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BitrixClient } from '../../src/bitrix/client.ts';
import { LeakyBucket } from '../../src/bitrix/limiter.ts';
import { WebhookAuth } from '../../src/bitrix/webhook-auth.ts';
import { parseConfig } from '../../src/config/load.ts';
import { CrmService } from '../../src/crm/crm-service.ts';
import { HookRunner } from '../../src/hooks/runner.ts';
import { UserDirectory } from '../../src/integration/user-directory.ts';
import { openStore, type Store } from '../../src/store/db.ts';
import { BitrixEmulator, type EmuEntity, type LoggedRequest } from '../fakes/bitrix-emulator.ts';
import { capturingLogger } from '../bitrix/setup.ts';

/** The real trace's client, office number and time: +79161234567 calls 74951234567 on 2026-11-22 08:09 MSK. */
export const CLIENT = '+79161234567';
export const DID = '74951234567';
export const CALL_STARTED_AT = Date.parse('2026-11-22T05:09:20Z');
export const NOW = Date.parse('2026-11-22T05:09:28Z');

/** Known entities of that client (as in the hook samples): a contact on user 3 (ext 102), a company on 4, a lead on 2. */
export function seedClient(emu: BitrixEmulator): void {
  emu.entities.push(
    { CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: 1201, NAME: 'Входящий звонок +79161234567', ASSIGNED_BY_ID: 2, PHONES: [CLIENT] },
    { CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 651, NAME: 'Сергей Кузнецов', ASSIGNED_BY_ID: 3, PHONES: ['89161234567'], FIELDS: { UF_CRM_DEPARTMENT: 'retail' } },
    { CRM_ENTITY_TYPE: 'COMPANY', CRM_ENTITY_ID: 643, NAME: 'ООО «Ромашка»', ASSIGNED_BY_ID: 4, PHONES: ['+7 916 123-45-67'] },
  );
}

export interface CrmRig {
  emu: BitrixEmulator;
  crm: CrmService;
  store: Store;
  lines: string[];
  clock: { now: number };
  /** Successful requests of these methods (case-insensitive), in order. */
  sent(...methods: string[]): LoggedRequest[];
  /** A second service on the same SQLite file and emulator (a daemon restart). */
  restart(): CrmService;
  close(): Promise<void>;
}

export async function startCrm(o: {
  crmYaml?: string;
  hooks?: Record<string, string>;
  entities?: EmuEntity[];
  seed?: boolean;
  timeoutMs?: number;
} = {}): Promise<CrmRig> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ab24-crm-'));
  const hooksDir = path.join(dir, 'customizations');
  mkdirSync(hooksDir);
  for (const [file, text] of Object.entries(o.hooks ?? {})) writeFileSync(path.join(hooksDir, file), text);

  const emu = new BitrixEmulator();
  await emu.listen();
  if (o.seed !== false) seedClient(emu);
  emu.entities.push(...(o.entities ?? []));

  const config = parseConfig(`
ami: { username: bx24, secret: ami-secret-crm }
bitrix24: { webhook_url: ${emu.webhookUrl}, default_user_id: 1 }
pbx: { timezone: Europe/Moscow }
storage: { path: ${path.join(dir, 'state.sqlite')} }
${o.crmYaml ?? ''}`, path.join(dir, 'config.yaml'), { env: {} });

  const { log, lines } = capturingLogger();
  const limiter = new LeakyBucket({ ratePerSec: 1000, burst: 1000 });
  const client = new BitrixClient(new WebhookAuth(emu.webhookUrl), limiter, log, { timeoutMs: o.timeoutMs ?? 10_000 });
  const store = openStore(config.storage.path);
  const users = new UserDirectory(client, store, log, '0 0 1 1 *');
  const hooks = new HookRunner({ dir: hooksDir, log, timeoutMs: 2000, watch: false });
  await hooks.start();
  const clock = { now: NOW };
  const make = () => new CrmService({
    client, hooks, store, users, log, config: config.crm, defaultUserId: config.bitrix24.defaultUserId, timezone: config.pbx.timezone,
    bitrixCrmCreate: config.bitrix24.crmCreate, now: () => clock.now,
  });
  const crm = make();
  return {
    emu, crm, store, lines, clock,
    sent: (...methods) => {
      const want = methods.map((m) => m.toLowerCase());
      return emu.requests.filter((r) => r.httpStatus === 200 && want.includes(r.method.toLowerCase()));
    },
    restart: make,
    async close() {
      await hooks.stop();
      users.stop();
      client.close();
      limiter.close();
      await emu.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
