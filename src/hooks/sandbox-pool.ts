/**
 * A small pool of sandbox processes (1 by default). Calls queue until a child is free. A dead child is replaced
 * right away the first time, and with growing delays while children keep dying without answering a single call
 * (a script that crashes its child on every call must not turn into a fork loop).
 */
import type { Logger } from '../log/logger.ts';
import { SandboxProcess, type SandboxCall, type SandboxLimits, type SandboxResult } from './sandbox-process.ts';

interface Job {
  req: SandboxCall;
  resolve: (r: SandboxResult) => void;
  /** Fails the job if no child picked it up in time (children keep dying, or a long queue). */
  giveUp: NodeJS.Timeout;
}

interface Slot {
  proc: SandboxProcess | undefined;
  /** Children that died in a row without answering: drives the restart delay. */
  crashes: number;
  /** Set while waiting out the restart delay. */
  restartTimer: NodeJS.Timeout | undefined;
  starting: boolean;
}

const MAX_BACKOFF_MS = 5000;

export class SandboxPool {
  readonly #limits: SandboxLimits;
  readonly #log: Logger;
  readonly #slots: Slot[];
  readonly #queue: Job[] = [];
  #stopped = false;

  constructor(opts: { size: number; limits: SandboxLimits; log: Logger }) {
    this.#limits = opts.limits;
    this.#log = opts.log;
    this.#slots = Array.from({ length: Math.max(1, opts.size) }, () => ({ proc: undefined, crashes: 0, restartTimer: undefined, starting: false }));
  }

  /** Starts the children now (instead of on the first call) so the first call does not pay ~40 ms of start-up. */
  async warm(): Promise<void> {
    await Promise.all(this.#slots.map((slot) => (slot.proc || slot.starting ? undefined : this.#start(slot))));
  }

  run(req: SandboxCall): Promise<SandboxResult> {
    if (this.#stopped) return Promise.resolve({ ok: false, error: 'the hook runner is stopped', logs: [], childDied: false });
    return new Promise<SandboxResult>((resolve) => {
      const waitMs = Math.max(5000, req.timeoutMs * 4);
      const job: Job = {
        req,
        resolve,
        giveUp: setTimeout(() => {
          const i = this.#queue.indexOf(job);
          if (i >= 0) this.#queue.splice(i, 1);
          resolve({ ok: false, error: `no sandbox process became free within ${waitMs} ms`, logs: [], childDied: false });
        }, waitMs),
      };
      this.#queue.push(job);
      this.#pump();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const job of this.#queue.splice(0)) {
      clearTimeout(job.giveUp);
      job.resolve({ ok: false, error: 'the hook runner is stopped', logs: [], childDied: false });
    }
    const exits: Promise<void>[] = [];
    for (const slot of this.#slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      if (slot.proc) {
        slot.proc.kill('the hook runner is stopped');
        exits.push(slot.proc.exited);
      }
    }
    await Promise.all(exits);
  }

  #pump(): void {
    if (this.#stopped) return;
    for (const slot of this.#slots) {
      if (this.#queue.length === 0) return;
      const proc = slot.proc;
      if (!proc || !proc.alive) {
        this.#replace(slot);
        continue;
      }
      if (slot.starting || proc.busy) continue;
      const job = this.#queue.shift()!;
      clearTimeout(job.giveUp);
      void proc.call(job.req).then((result) => {
        if (!result.ok && result.childDied) this.#log.warn(`sandbox process ${String(proc.pid)} ended: ${result.error}`);
        else slot.crashes = 0;
        job.resolve(result);
        this.#pump();
      });
    }
  }

  /** Replaces a dead child: at once the first time, then after growing delays while children keep dying. */
  #replace(slot: Slot): void {
    if (this.#stopped || slot.starting || slot.restartTimer || slot.proc?.alive) return;
    if (slot.proc) {
      slot.crashes++;
      slot.proc = undefined;
    }
    const delay = slot.crashes <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 100 * 2 ** (slot.crashes - 2));
    if (delay === 0) {
      void this.#start(slot);
      return;
    }
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      void this.#start(slot);
    }, delay);
  }

  async #start(slot: Slot): Promise<void> {
    if (this.#stopped) return;
    slot.starting = true;
    const proc = new SandboxProcess(this.#limits);
    slot.proc = proc;
    try {
      await proc.ready();
    } catch (err) {
      this.#log.error(`E_HOOK sandbox process failed to start: ${(err as Error).message}`, { code: 'E_HOOK' });
    } finally {
      slot.starting = false;
    }
    // Replace a dead child eagerly, so the next call does not pay the start-up.
    void proc.exited.then(() => {
      this.#replace(slot);
      this.#pump();
    });
    this.#pump();
  }
}
