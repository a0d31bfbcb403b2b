/**
 * The daemon under systemd (Type=notify, WatchdogSec=): READY=1 once it has started, WATCHDOG=1 while it is
 * healthy, STOPPING=1 when it shuts down. "Healthy" for the watchdog means every AMI connection is logged in and
 * its keepalive Ping was answered recently: a daemon whose event loop hangs, or that has lost its PBX for longer
 * than WatchdogSec, stops feeding the watchdog and systemd restarts it (nothing is lost: calls in progress and
 * queued requests live in the state database).
 */
import type { Daemon } from '../integration/daemon.ts';
import type { Logger } from '../log/logger.ts';
import { SdNotify, type SdNotifyOptions } from './sd-notify.ts';

/** Allowance for timer jitter on top of the keepalive's own interval + timeout. */
const KEEPALIVE_SLACK_MS = 1000;

export interface SystemdIntegration {
  /** Sends STOPPING=1 (and stops feeding the watchdog); resolves when systemd has it. */
  stopping(): Promise<void>;
}

/** Why the watchdog must not be fed now, or undefined when every AMI connection is alive. */
export function amiProblem(daemon: Daemon, now = Date.now()): string | undefined {
  const problems: string[] = [];
  daemon.amiClients.forEach((client, i) => {
    const ami = daemon.config.ami[i];
    const name = ami?.name ?? String(i);
    if (!client.isConnected) {
      problems.push(`AMI ${name} is not connected`);
      return;
    }
    const limit = (ami?.keepaliveIntervalMs ?? 15_000) + (ami?.keepaliveTimeoutMs ?? 5_000) + KEEPALIVE_SLACK_MS;
    const age = now - client.lastKeepaliveOkAt;
    if (age > limit) problems.push(`AMI ${name} keepalive last answered ${Math.round(age / 1000)} s ago`);
  });
  return problems.length > 0 ? problems.join('; ') : undefined;
}

/** Call once the daemon has started. Does nothing (and costs nothing) without $NOTIFY_SOCKET. */
export function startSystemd(daemon: Daemon, o: Partial<SdNotifyOptions> & { log: Logger }): SystemdIntegration {
  const notify = new SdNotify(o);
  const log = o.log.child({ component: 'systemd' });
  if (!notify.enabled) return { stopping: async () => undefined };

  const status = () => {
    const calls = daemon.sessions.reduce((n, s) => n + s.activeCalls, 0);
    return `STATUS=${calls} call(s) in progress, outbox depth ${daemon.outbox.depth()}`;
  };
  void notify.send('READY=1', `MAINPID=${process.pid}`, status());

  let timer: NodeJS.Timeout | undefined;
  const watchdogMs = notify.watchdogMs;
  if (watchdogMs !== undefined) {
    let withheld: string | undefined;
    const tick = () => {
      const problem = amiProblem(daemon);
      if (problem === undefined) {
        if (withheld !== undefined) log.info('watchdog: AMI is alive again, feeding the watchdog');
        withheld = undefined;
        void notify.send('WATCHDOG=1', status());
      } else if (problem !== withheld) {
        withheld = problem;
        log.warn(`watchdog: not fed (${problem}); systemd restarts the daemon after WatchdogSec unless it recovers`);
        void notify.send(`STATUS=watchdog withheld: ${problem}`);
      }
    };
    // systemd's advice: notify at half the interval at the latest; a third leaves room for a slow spawn.
    timer = setInterval(tick, Math.max(50, watchdogMs / 3));
    timer.unref();
  }
  log.info(`notified systemd: ready${watchdogMs !== undefined ? `, watchdog every ${Math.round(watchdogMs / 3)} ms while AMI is alive` : ''}`);

  return {
    async stopping() {
      clearInterval(timer);
      await notify.send('STOPPING=1', 'STATUS=stopping');
    },
  };
}
