/**
 * `run --config FILE`: the daemon. SIGTERM / SIGINT stop it cleanly (events read so far are committed, in-flight
 * Bitrix24 requests finish, queued ones stay in the outbox for the next start). A bug in one request never
 * takes the daemon down: unhandled rejections are logged. Under systemd (Type=notify) it reports READY=1,
 * feeds the watchdog while AMI is alive, and says STOPPING=1 (src/ops/systemd.ts).
 */
import { loadConfig } from '../config/load.ts';
import { Daemon } from '../integration/daemon.ts';
import { createLogger } from '../log/logger.ts';
import { startSystemd } from '../ops/systemd.ts';

export async function runCommand(configPath: string): Promise<number> {
  const config = loadConfig(configPath);
  const log = createLogger({ level: config.log.level, format: config.log.format });
  process.on('unhandledRejection', (reason) => log.error(`unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}`));
  // Kept until the wait below takes it over (it may come while starting: a click can save state then).
  let earlyFatal: Error | undefined;
  let fatal = (err: Error) => { earlyFatal ??= err; };
  const daemon = new Daemon({ config, log, onFatal: (err) => fatal(err) });
  try {
    await daemon.start();
  } catch (err) {
    // E.g. the HTTP port is taken: release what did start (hook sandboxes, watchers) so the process exits and
    // systemd can try again, instead of lingering half-started.
    log.error(`start failed: ${(err as Error).message}`);
    await daemon.stop().catch(() => undefined);
    throw err;
  }
  const systemd = startSystemd(daemon, { log });
  const code = await new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log.info(`${signal} received: stopping`);
      resolve(0);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // Exit non-zero: systemd (Restart=always) starts the daemon again from the saved state.
    fatal = (err) => {
      log.error(`stopping: the state in memory cannot be trusted (${err.message})`, { code: 'E_STORE' });
      resolve(1);
    };
    if (earlyFatal) fatal(earlyFatal);
  });
  await systemd.stopping();
  await daemon.stop();
  return code;
}
