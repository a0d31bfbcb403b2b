/**
 * End-to-end harness: the real daemon, configured from YAML like an admin would, against the AMI simulator
 * replaying a recorded trace and the Bitrix24 emulator, both over real sockets. Recording files named in the
 * trace are created with their recorded sizes under a temp dir that stands for the PBX's monitor directory.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { parseConfig } from '../../src/config/load.ts';
import { Daemon } from '../../src/integration/daemon.ts';
import type { Intent } from '../../src/calls/intents.ts';
import { createLogger } from '../../src/log/logger.ts';
import { AmiSimulator } from '../fakes/ami-simulator.ts';
import { createRecordings } from '../fakes/recordings.ts';
import { BitrixEmulator, type LoggedRequest } from '../fakes/bitrix-emulator.ts';
import { waitFor } from '../ops/support.ts';

export const FIXTURES = join(import.meta.dirname, '../fixtures/ami');
export { PBX_MONITOR_DIR } from '../fakes/recordings.ts';
import { PBX_MONITOR_DIR } from '../fakes/recordings.ts';

export interface Harness {
  dir: string;
  ami: AmiSimulator;
  bitrix: BitrixEmulator;
  daemon: Daemon;
  logLines: string[];
  intents: Intent[];
  /** Waits until the trace was replayed and every queued request was delivered. */
  settle(): Promise<void>;
  /** Resolves when a log line matches (rejects after `timeoutMs`): for outcomes only the log shows. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Replays another trace on the running connection (its recordings are created first). */
  play(trace: string): void;
  /** POSTs to the daemon's HTTP endpoint. */
  post(path: string, body: string, contentType?: string): Promise<Response>;
  /** REST calls of the telephony.externalCall.* family, in order, with method names shortened. */
  telephony(): Array<{ method: string; params: any }>;
  /** The telephony requests in one line each, as the tests compare them (see compact()). */
  compact(): string[];
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export interface HarnessOptions {
  trace?: string | string[];
  /** Extra YAML appended to the generated config. */
  yaml?: string;
  customizations?: Record<string, string>;
  startDaemon?: boolean;
  bitrixOptions?: ConstructorParameters<typeof BitrixEmulator>[0];
  speed?: number;
  actionWaitMs?: number;
  /** The secret the daemon logs in with (the simulator expects AMI_SECRET). */
  amiSecret?: string;
  /** Authenticate as a local OAuth application (tokens arrive through the install handler) instead of a webhook. */
  oauth?: boolean;
  /** Serve the daemon's HTTP endpoint (events, install) on a free port. */
  http?: boolean;
  /** The daemon's client-side rate limit (default: effectively none, so tests are not slowed down). */
  rateLimit?: { perSecond: number; burst: number };
  /** ami.action_timeout_ms (default: the daemon's). */
  amiActionTimeoutMs?: number;
  /** bitrix24.default_user_id (default 1, the portal's admin, who has no internal number). */
  defaultUserId?: number;
}

/** The application_token the harness configures: Bitrix24 events must carry it. */
export const APP_TOKEN = 'app-token-4f1c9e2a7b';

/** Long enough for the redactor (it ignores values shorter than 4 characters). */
export const AMI_SECRET = 'ami-s3cret-lab';

export async function startHarness(o: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'ab24-e2e-'));
  const traces = o.trace ? (Array.isArray(o.trace) ? o.trace : [o.trace]) : [];
  const recordings = join(dir, 'monitor');
  mkdirSync(recordings);
  createRecordings(recordings, traces.map((t) => join(FIXTURES, `${t}.jsonl`)));
  const custom = join(dir, 'customizations');
  mkdirSync(custom);
  for (const [file, text] of Object.entries(o.customizations ?? {})) writeFileSync(join(custom, file), text, { mode: 0o755 });

  const bitrix = new BitrixEmulator(o.bitrixOptions);
  await bitrix.listen();
  const ami = new AmiSimulator({ speed: o.speed ?? Infinity, secret: AMI_SECRET });
  await ami.listen();
  // The daemon sends only Ping and CoreShowChannels: other recorded actions (Status, Getvar, Originate) are skipped fast.
  if (traces.length > 0) ami.play(traces.map((t) => join(FIXTURES, `${t}.jsonl`)), { actionWaitMs: o.actionWaitMs ?? 150 });

  const yaml = `
ami:
  host: 127.0.0.1
  port: ${ami.port}
  username: bx24
  secret: ${o.amiSecret ?? AMI_SECRET}
  keepalive_interval_ms: 5000${o.amiActionTimeoutMs ? `
  action_timeout_ms: ${o.amiActionTimeoutMs}` : ''}
bitrix24:
  ${o.oauth ? `oauth: { client_id: ${bitrix.clientId}, client_secret: ${bitrix.clientSecret}, oauth_server: "${bitrix.baseUrl}" }` : `webhook_url: ${bitrix.webhookUrl}`}
  default_user_id: ${o.defaultUserId ?? 1}
  application_token: ${APP_TOKEN}
  rate_limit: { per_second: ${o.rateLimit?.perSecond ?? 1000}, burst: ${o.rateLimit?.burst ?? 1000} }
pbx:
  trunks: [provider]
  timezone: Europe/Moscow
  recordings:
    pbx_dir: ${PBX_MONITOR_DIR}
    local_dir: ${recordings}
    ready_timeout_ms: 3000
http:
  enabled: ${o.oauth || o.http ? 'true' : 'false'}
  port: 0
storage:
  path: ${join(dir, 'state.sqlite')}
customizations:
  dir: ${custom}
  timeout_ms: 500
${o.yaml ?? ''}`;
  const config = parseConfig(yaml, join(dir, 'config.yaml'));
  const logLines: string[] = [];
  const intents: Intent[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { logLines.push(String(chunk)); cb(); } });
  const makeDaemon = () => new Daemon({
    config, log: createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream: sink })] }),
    onIntents: (_pbx, list) => { intents.push(...list); },
  });
  let daemon = makeDaemon();
  const h: Harness = {
    dir, ami, bitrix, logLines, intents,
    get daemon() { return daemon; },
    async settle() {
      await Promise.all(daemon.amiClients.map((c) => c.ready()));
      await ami.done();
      // done() means written, not yet read: a Ping answered after it proves the daemon read everything before it
      await Promise.all(daemon.amiClients.filter((c) => c.isConnected).map((c) => c.action('Ping')));
      // the last socket read is committed on the next tick; then the outbox drains
      await new Promise((r) => setImmediate(r));
      for (const s of daemon.sessions) s.flush();
      await daemon.outbox.idle();
    },
    waitForLog(pattern: RegExp, timeoutMs = 5000) {
      return waitFor(() => logLines.some((l) => pattern.test(l)), timeoutMs, `a log line matching ${pattern}`);
    },
    telephony() {
      return bitrix.requests
        .filter((r: LoggedRequest) => r.method.toLowerCase().startsWith('telephony.externalcall.') && r.httpStatus === 200)
        .map((r: LoggedRequest) => ({ method: r.method.replace(/^telephony\.externalCall\./i, ''), params: r.params }));
    },
    play(trace: string) {
      createRecordings(recordings, [join(FIXTURES, `${trace}.jsonl`)]);
      ami.play(join(FIXTURES, `${trace}.jsonl`), { actionWaitMs: o.actionWaitMs ?? 150 });
    },
    post(path: string, body: string, contentType = 'application/x-www-form-urlencoded') {
      return fetch(`http://127.0.0.1:${daemon.http!.port}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
    },
    compact() {
      return compact(h.telephony(), [...bitrix.calls.keys()]);
    },
    async stop() {
      await daemon.stop();
      await ami.close();
      await bitrix.close();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await daemon.stop();
      daemon = makeDaemon();
      await daemon.start();
    },
  } as Harness;
  if (o.startDaemon !== false) await daemon.start();
  return h;
}

/**
 * One line per telephony request with the parameters that decide what the CRM shows: the Bitrix24 call is named
 * by the order it was registered in (#1, #2, …) instead of its random CALL_ID.
 */
export function compact(requests: Array<{ method: string; params: any }>, callIds: string[]): string[] {
  const ids = new Map(callIds.map((id, i) => [id, `#${i + 1}`]));
  const call = (id: string) => ids.get(id) ?? '#?';
  let registered = 0;
  return requests.map(({ method, params: p }) => {
    switch (method) {
      case 'register': {
        registered++;
        return `register #${registered} type=${p.TYPE} user=${p.USER_ID} phone=${p.PHONE_NUMBER} line=${p.LINE_NUMBER ?? '-'} crm_create=${p.CRM_CREATE}`;
      }
      case 'show':
      case 'hide':
        return `${method} ${call(p.CALL_ID)} users=${[p.USER_ID].flat().join(',')}`;
      case 'finish':
        return `finish ${call(p.CALL_ID)} user=${p.USER_ID} status=${p.STATUS_CODE} duration=${p.DURATION}`;
      case 'attachRecord':
        return `attachRecord ${call(p.CALL_ID)} ${p.FILENAME}${p.FILE_CONTENT ? '' : ' (upload)'}`;
      default:
        return method;
    }
  });
}
