/**
 * `replay TRACE.jsonl [--config FILE]`: feeds a recorded AMI session (the `ami-trace/1` JSONL the test fixtures
 * use) through the daemon's own code — parser, call machine, customization hooks, dispatcher — and prints the
 * Bitrix24 requests it would make. Nothing is sent anywhere and no state is written.
 *
 * Without a config the lab defaults apply (extensions ^\d{2,5}$, every other endpoint a trunk, RU numbers) and,
 * since no portal is asked, the extension numbers stand in for Bitrix24 user ids. With a config, its PBX rules,
 * hooks and the daemon's cached extension map are used.
 */
import { readFileSync } from 'node:fs';
import { AmiParser } from '../ami/parser.ts';
import type { AmiMessage } from '../ami/message.ts';
import { snapshotFromCoreShowChannels, toCallEvent } from '../ami/to-call-event.ts';
import { DryRunClient } from '../bitrix/dry-run.ts';
import type { ExtensionUser } from '../bitrix/users.ts';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { HookRunner } from '../hooks/runner.ts';
import { Dispatcher, NO_HOOKS, mergeCardOps, type HookRunnerLike, type IntentOp, type UserLookup } from '../integration/dispatcher.ts';
import { PbxSession } from '../integration/pbx-session.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { Outbox } from '../outbox/outbox.ts';
import { openStore } from '../store/db.ts';

export interface ReplayResult {
  requests: Array<{ method: string; params: Record<string, unknown> }>;
}

export async function replayTrace(tracePath: string, config: Config | undefined, log: Logger = silentLogger(),
  onLine: (line: string) => void = () => undefined): Promise<ReplayResult> {
  const pbx = config?.ami[0]?.pbx;
  const users = await userLookup(config);
  const hooks: HookRunnerLike & { stop?: () => Promise<void> } = config
    ? new HookRunner({ dir: config.customizations.dir, timeoutMs: config.customizations.timeoutMs, watch: false, log })
    : NO_HOOKS;
  if (hooks instanceof HookRunner) await hooks.start();
  const client = new DryRunClient((r) => onLine(`→ ${r.method} ${JSON.stringify(r.params)}`));
  const store = openStore(':memory:');
  const dispatcher = new Dispatcher({
    client, users, hooks, log, dryRun: true,
    defaultUserId: config?.bitrix24.defaultUserId ?? 1,
    crmCreate: config?.bitrix24.crmCreate ?? true,
    addToChat: config?.bitrix24.addToChat ?? true,
    defaultCountry: pbx?.defaultCountry ?? 'RU',
    timezone: pbx?.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone,
    recordings: pbx?.recordings ?? { pbxDir: '/', localDir: '/', attach: true, readyTimeoutMs: 0, uploadThresholdBytes: 5_000_000 },
  });
  const outbox = new Outbox(store, { handler: (op, prior) => dispatcher.handle(op.payload as IntentOp, prior), merge: mergeCardOps, mergeable: (op) => op.kind === 'show' || op.kind === 'hide', log, concurrency: 1 });
  const session = new PbxSession({
    name: config?.ami[0]?.name ?? 'pbx', store, outbox, log,
    machine: {
      extensionPattern: pbx?.extensionPattern ?? '^\\d{2,5}$', registerInternal: pbx?.registerInternal ?? false,
      showCard: config?.bitrix24.showCard ?? 'ringing', ...(pbx?.trunks ? { trunks: pbx.trunks } : {}),
    },
    onIntents: (intents) => {
      for (const i of intents) onLine(`# ${i.callKey} ${i.regId} ${i.kind}${i.kind === 'register' ? ` ${i.direction} ${i.externalNumber || '(withheld)'} → ${i.extension ?? 'default user'}` : ''}${i.kind === 'finish' ? ` ${i.status} ${i.durationSec}s → ${i.extension ?? 'default user'}` : ''}${i.kind === 'show' || i.kind === 'hide' ? ` ${i.extensions.join(',')}` : ''}`);
    },
  });
  // Recorded times are replayed as event times, as if Asterisk had sent Timestamp headers.
  const base = Date.now();
  const listItems: AmiMessage[] = [];
  for (const line of readFileSync(tracePath, 'utf8').split('\n').slice(1)) {
    if (!line.trim()) continue;
    const rec = JSON.parse(line) as { t: number; dir: string; raw: string };
    if (rec.dir !== 'in') continue;
    for (const parsed of new AmiParser().push(rec.raw)) {
      const msg: AmiMessage = { ...parsed, receivedAt: base + Math.round(rec.t) };
      if (msg.name === 'CoreShowChannel') listItems.push(msg);
      const event = msg.name === 'CoreShowChannelsComplete' ? snapshotFromCoreShowChannels(listItems.splice(0), msg.receivedAt) : toCallEvent(msg);
      if (event) session.feed(event);
    }
    session.flush();
  }
  outbox.start();
  await outbox.idle();
  await outbox.stop();
  await hooks.stop?.();
  store.close();
  return { requests: client.requests };
}

async function userLookup(config: Config | undefined): Promise<UserLookup> {
  let cached: Map<string, ExtensionUser> | undefined;
  if (config && config.storage.path !== ':memory:') {
    try {
      const store = openStore(config.storage.path);
      const entries = store.getKv<Array<[string, ExtensionUser]>>('bitrix24.extension-map');
      store.close();
      if (entries) cached = new Map(entries);
    } catch {
      // no state database yet: fall back to placeholders
    }
  }
  return {
    userFor: async (ext) => {
      if (!ext) return undefined;
      if (cached) return cached.get(ext)?.userId;
      return /^\d+$/.test(ext) ? Number(ext) : undefined;
    },
  };
}

export async function replayCommand(tracePath: string, configPath: string | undefined, out: NodeJS.WritableStream): Promise<number> {
  const config = configPath ? loadConfig(configPath) : undefined;
  if (!config) out.write('# no --config: lab defaults; extension numbers stand in for Bitrix24 user ids\n');
  await replayTrace(tracePath, config, silentLogger(), (line) => out.write(`${line}\n`));
  return 0;
}
