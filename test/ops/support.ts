/**
 * A daemon with its HTTP server on (port 0) between the AMI simulator and the Bitrix24 emulator, for the
 * health, metrics and CLI tests. Real sockets throughout; the daemon runs in this process.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { parseConfig } from '../../src/config/load.ts';
import { Daemon } from '../../src/integration/daemon.ts';
import { createLogger } from '../../src/log/logger.ts';
import { AmiSimulator } from '../fakes/ami-simulator.ts';
import { BitrixEmulator } from '../fakes/bitrix-emulator.ts';
import { createRecordings } from '../fakes/recordings.ts';
import { AMI_SECRET, FIXTURES, PBX_MONITOR_DIR } from '../support/e2e.ts';

export interface OpsRig {
  dir: string;
  configFile: string;
  ami: AmiSimulator;
  bitrix: BitrixEmulator;
  daemon: Daemon;
  logLines: string[];
  url(path: string): string;
  play(trace: string): void;
  stop(): Promise<void>;
}

export async function startRig(o: { customizations?: Record<string, string>; start?: boolean; httpPort?: number } = {}): Promise<OpsRig> {
  const dir = mkdtempSync(join(tmpdir(), 'ab24-ops-'));
  const recordings = join(dir, 'monitor');
  mkdirSync(recordings);
  const custom = join(dir, 'customizations');
  mkdirSync(custom);
  for (const [file, text] of Object.entries(o.customizations ?? {})) writeFileSync(join(custom, file), text, { mode: 0o755 });
  const bitrix = new BitrixEmulator();
  await bitrix.listen();
  const ami = new AmiSimulator({ secret: AMI_SECRET });
  await ami.listen();
  const yaml = `
ami: { host: 127.0.0.1, port: ${ami.port}, username: bx24, secret: ${AMI_SECRET}, reconnect_max_delay_ms: 200 }
bitrix24: { webhook_url: "${bitrix.webhookUrl}", default_user_id: 1, rate_limit: { per_second: 1000, burst: 1000 } }
pbx:
  trunks: [provider]
  recordings: { pbx_dir: ${PBX_MONITOR_DIR}, local_dir: ${recordings}, ready_timeout_ms: 3000 }
http: { host: 127.0.0.1, port: ${o.httpPort ?? 0} }
storage: { path: ${join(dir, 'state.sqlite')} }
customizations: { dir: ${custom}, timeout_ms: 500, watch: false }
`;
  const configFile = join(dir, 'config.yaml');
  writeFileSync(configFile, yaml);
  const config = parseConfig(yaml, configFile);
  const logLines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { logLines.push(String(chunk)); cb(); } });
  const daemon = new Daemon({ config, log: createLogger({ level: 'info', transports: [new winston.transports.Stream({ stream: sink })] }) });
  if (o.start !== false) {
    await daemon.start();
    await daemon.amiClients[0]!.ready();
  }
  return {
    dir, configFile, ami, bitrix, daemon, logLines,
    url: (path) => `http://127.0.0.1:${daemon.http!.port}${path}`,
    play(trace) {
      createRecordings(recordings, [join(FIXTURES, `${trace}.jsonl`)]);
      ami.play(join(FIXTURES, `${trace}.jsonl`), { actionWaitMs: 150 });
    },
    async stop() {
      await daemon.stop().catch(() => undefined);
      await ami.close();
      await bitrix.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once `predicate` holds, re-checking on every outbox/AMI event and every 20 ms. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One sample of a Prometheus text exposition, e.g. metric(text, 'x_total{a="b"}'); undefined when absent. */
export function metric(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** A TCP port that was free a moment ago (for a config file the CLI reads: port 0 would not name the daemon). */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The fakes for a daemon run as a separate process: a scratch dir, the Bitrix24 emulator and the AMI simulator. */
export interface ProcessFakes {
  dir: string;
  bitrix: BitrixEmulator;
  ami: AmiSimulator;
}

/** Starts them and registers their teardown (last in, first out) on `cleanup`. */
export async function startProcessFakes(prefix: string, cleanup: Array<() => unknown>): Promise<ProcessFakes> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const bitrix = new BitrixEmulator();
  await bitrix.listen();
  cleanup.push(() => bitrix.close());
  const ami = new AmiSimulator({ secret: AMI_SECRET });
  await ami.listen();
  cleanup.push(() => ami.close());
  return { dir, bitrix, ami };
}
