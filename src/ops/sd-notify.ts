/**
 * The sd_notify protocol (READY=1, WATCHDOG=1, STOPPING=1, STATUS=…) without a native module.
 *
 * The protocol is one datagram on the AF_UNIX/SOCK_DGRAM socket named by $NOTIFY_SOCKET, and Node's dgram
 * cannot send to unix datagram sockets. So each notification runs systemd's own `systemd-notify` binary, which
 * ships with every systemd. Two consequences, both handled in the unit file and here:
 *  - the datagram comes from a child process, so the unit needs NotifyAccess=all ("main" would refuse it);
 *  - systemd attributes a datagram to the unit through the sender's cgroup, which fails once the sender has
 *    exited. systemd-notify (systemd ≥ 246) waits until the manager has processed the message (a BARRIER=1
 *    round trip), so we let it wait (no --no-block), bounded by a timeout.
 * Notifications are sent one at a time, in the order asked, so STOPPING=1 is never overtaken by a WATCHDOG=1.
 * Without $NOTIFY_SOCKET (not started by systemd) nothing is sent.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../log/logger.ts';

export interface SdNotifyOptions {
  log: Logger;
  /** Where NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The systemd-notify executable (default: found on PATH). */
  binary?: string;
  /** A notification that has not been acknowledged in this long is abandoned (default 5 s). */
  timeoutMs?: number;
}

export class SdNotify {
  readonly #socket: string | undefined;
  readonly #env: NodeJS.ProcessEnv;
  readonly #binary: string;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  #queue: Promise<unknown> = Promise.resolve();
  #failureLogged = false;

  constructor(o: SdNotifyOptions) {
    this.#env = o.env ?? process.env;
    const socket = this.#env['NOTIFY_SOCKET'];
    this.#socket = socket ? socket : undefined;
    this.#binary = o.binary ?? 'systemd-notify';
    this.#timeoutMs = o.timeoutMs ?? 5000;
    this.#log = o.log.child({ component: 'systemd' });
  }

  /** True when started by systemd with a notify socket. */
  get enabled(): boolean {
    return this.#socket !== undefined;
  }

  /**
   * The watchdog interval systemd expects (WatchdogSec=), or undefined when there is none for this process
   * (WATCHDOG_PID names another process, as after a fork).
   */
  get watchdogMs(): number | undefined {
    if (!this.enabled) return undefined;
    const usec = Number(this.#env['WATCHDOG_USEC']);
    const pid = this.#env['WATCHDOG_PID'];
    if (!Number.isFinite(usec) || usec <= 0) return undefined;
    if (pid !== undefined && pid !== '' && Number(pid) !== process.pid) return undefined;
    return usec / 1000;
  }

  /**
   * Sends `KEY=value` assignments as one notification. Resolves true once systemd has processed it, false when
   * disabled or it could not be sent (logged once: a missing systemd-notify must not flood the journal).
   */
  send(...assignments: string[]): Promise<boolean> {
    if (!this.#socket) return Promise.resolve(false);
    // A value with a newline would split into a second, unintended assignment.
    const args = assignments.map((a) => a.replace(/[\r\n]+/g, ' '));
    const next = this.#queue.then(() => this.#spawn(args));
    this.#queue = next;
    return next;
  }

  #spawn(args: string[]): Promise<boolean> {
    return new Promise((resolve) => {
      const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: this.#socket };
      if (this.#env['PATH'] !== undefined) env['PATH'] = this.#env['PATH'];
      let settled = false;
      const done = (ok: boolean, why?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!ok && !this.#failureLogged) {
          this.#failureLogged = true;
          this.#log.error(`cannot notify systemd (${args.join(' ')}): ${why}; is systemd-notify installed?`);
        }
        if (ok) this.#failureLogged = false;
        resolve(ok);
      };
      const child = spawn(this.#binary, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { if (stderr.length < 500) stderr += String(d); });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        done(false, `no acknowledgement within ${this.#timeoutMs} ms`);
      }, this.#timeoutMs);
      child.on('error', (err) => done(false, err.message));
      child.on('close', (code, signal) => {
        if (code === 0) done(true);
        else done(false, `${this.#binary} exited with ${code ?? signal}${stderr ? `: ${stderr.trim()}` : ''}`);
      });
    });
  }
}
