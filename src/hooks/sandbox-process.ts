/**
 * One sandbox child process, seen from the daemon. Design (d) of research/dependencies.md §3: a long-lived Node
 * child under `--permission` that may read only its runner file, with an empty environment, a 64 MB heap, no code
 * generation from strings, and an address-space ulimit (`ulimit -v`), because ArrayBuffers live outside the V8 heap
 * and are not limited by `--max-old-space-size`.
 *
 * One call at a time: the per-call watchdog then measures exactly that call. When it fires, or the output breaks
 * the framing or the size cap, the child is SIGKILLed; the pool starts a new one.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const RUNNER_FILE = fileURLToPath(new URL('./sandbox-runner.js', import.meta.url));

export interface SandboxLimits {
  /** V8 old-space limit of the child, MB. */
  heapMb: number;
  /** Address-space limit of the child (ulimit -v), MB. Node itself needs ~1.2 GB of reservations to start. */
  addressSpaceMb: number;
  /** Largest hook input or output, bytes. */
  maxMessageBytes: number;
}

/** Lets the in-child load timeout (same length) answer before the watchdog kills, even on a busy box. */
const WATCHDOG_GRACE_MS = 100;

export const DEFAULT_LIMITS: SandboxLimits = { heapMb: 64, addressSpaceMb: 2048, maxMessageBytes: 256 * 1024 };

export interface SandboxCall {
  key: string;
  hook: string;
  file: string;
  /** The wrapped source, sent when this child has not compiled `key` yet. */
  src: string;
  input: string;
  timeoutMs: number;
}

export type SandboxResult =
  | { ok: true; out: string; logs: Array<[string, string]> }
  | { ok: false; error: string; logs: Array<[string, string]>; childDied: boolean };

interface InFlight {
  id: number;
  resolve: (r: SandboxResult) => void;
  watchdog: NodeJS.Timeout;
  timeoutMs: number;
}

export class SandboxProcess {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #limits: SandboxLimits;
  readonly #loaded = new Set<string>();
  readonly #ready: Promise<void>;
  #stdout = '';
  #stderrTail = '';
  #inFlight: InFlight | undefined;
  #nextId = 1;
  #exited = false;
  /** Why we killed it, when we did: reported to the call in flight instead of "exited". */
  #killReason: string | undefined;
  readonly exited: Promise<void>;

  constructor(limits: SandboxLimits) {
    this.#limits = limits;
    const node = [
      process.execPath, '--permission', `--allow-fs-read=${RUNNER_FILE}`,
      `--max-old-space-size=${limits.heapMb}`, '--max-semi-space-size=4', '--disallow-code-generation-from-strings',
      RUNNER_FILE, String(limits.maxMessageBytes),
    ];
    // `exec` replaces the shell, so the pid we hold (and SIGKILL) is Node's.
    this.#child = spawn('/bin/sh', ['-c', `ulimit -v ${limits.addressSpaceMb * 1024} && exec "$0" "$@"`, ...node], {
      env: {},
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#child.stdout.setEncoding('utf8');
    this.#child.stderr.setEncoding('utf8');
    this.#child.stdin.on('error', () => { /* EPIPE after the child died: the exit handler reports it */ });
    this.#child.stderr.on('data', (chunk: string) => { this.#stderrTail = (this.#stderrTail + chunk).slice(-2000); });

    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.#ready = new Promise<void>((res, rej) => { readyResolve = res; readyReject = rej; });
    this.#ready.catch(() => { /* observed by call() */ });
    this.#child.stdout.on('data', (chunk: string) => this.#onStdout(chunk, readyResolve));
    this.exited = new Promise<void>((resolve) => {
      const onGone = (reason: string) => {
        if (this.#exited) return;
        this.#exited = true;
        readyReject(new Error(reason));
        this.#finish({ ok: false, error: this.#killReason ?? reason, logs: [], childDied: true });
        resolve();
      };
      this.#child.on('exit', (code, signal) => onGone(this.#describeExit(code, signal)));
      this.#child.on('error', (err) => onGone(`the sandbox process could not start: ${err.message}`));
    });
  }

  get pid(): number | undefined { return this.#child.pid; }
  get busy(): boolean { return this.#inFlight !== undefined; }
  get alive(): boolean { return !this.#exited; }

  /** Resolves when the child is up; rejects if it died first. */
  ready(): Promise<void> { return this.#ready; }

  /**
   * Runs one hook call. The watchdog is the time limit of a call (see sandbox-runner.js on why the vm `timeout`
   * only guards a script's loading).
   */
  call(req: SandboxCall): Promise<SandboxResult> {
    if (this.#inFlight) throw new Error('internal: sandbox process already has a call in flight');
    if (this.#exited) return Promise.resolve({ ok: false, error: 'the sandbox process is not running', logs: [], childDied: true });
    const id = this.#nextId++;
    const needsSource = !this.#loaded.has(req.key);
    const message = { t: 'call', id, key: req.key, hook: req.hook, file: req.file, input: req.input, timeoutMs: req.timeoutMs,
      ...(needsSource ? { src: req.src } : {}) };
    if (needsSource) {
      // Mirrors the child, which keeps one version per hook: a call still running an older version (a reload
      // happened meanwhile) then simply sends its source again.
      for (const key of this.#loaded) if (key.startsWith(`${req.hook}@`)) this.#loaded.delete(key);
      this.#loaded.add(req.key);
    }
    return new Promise<SandboxResult>((resolve) => {
      const watchdog = setTimeout(() => this.kill(`timed out after ${req.timeoutMs} ms (the sandbox process was killed)`), req.timeoutMs + WATCHDOG_GRACE_MS);
      this.#inFlight = { id, resolve, watchdog, timeoutMs: req.timeoutMs };
      this.#child.stdin.write(JSON.stringify(message) + '\n');
    });
  }

  /** SIGKILL; the call in flight (if any) fails with `reason`. */
  kill(reason: string): void {
    if (this.#exited) return;
    this.#killReason ??= reason;
    this.#child.kill('SIGKILL');
  }

  #onStdout(chunk: string, onReady: () => void): void {
    this.#stdout += chunk;
    if (this.#stdout.length > this.#limits.maxMessageBytes * 2 + 64 * 1024) {
      this.kill(`the hook's output is larger than ${this.#limits.maxMessageBytes} bytes`);
      return;
    }
    let nl: number;
    while ((nl = this.#stdout.indexOf('\n')) >= 0) {
      const line = this.#stdout.slice(0, nl);
      this.#stdout = this.#stdout.slice(nl + 1);
      let msg: { t?: string; id?: number; ok?: boolean; out?: string; error?: string; logs?: Array<[string, string]> };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        this.kill('the sandbox process sent a malformed message');
        return;
      }
      if (msg.t === 'ready') { onReady(); continue; }
      if (!this.#inFlight || msg.id !== this.#inFlight.id) continue;
      const logs = Array.isArray(msg.logs) ? msg.logs : [];
      this.#finish(msg.ok === true && typeof msg.out === 'string'
        ? { ok: true, out: msg.out, logs }
        : { ok: false, error: String(msg.error ?? 'unknown failure'), logs, childDied: false });
    }
  }

  #finish(result: SandboxResult): void {
    const call = this.#inFlight;
    if (!call) return;
    this.#inFlight = undefined;
    clearTimeout(call.watchdog);
    call.resolve(result);
  }

  #describeExit(code: number | null, signal: NodeJS.Signals | null): string {
    const tail = this.#stderrTail;
    if (/heap out of memory|Array buffer allocation failed|Fatal process out of memory|allocation failed/i.test(tail)) {
      return 'the sandbox process ran out of memory and was restarted';
    }
    if (signal === 'SIGABRT' || signal === 'SIGTRAP' || signal === 'SIGSEGV') {
      return `the sandbox process crashed (${signal}; memory limit?) and was restarted`;
    }
    return `the sandbox process exited (${signal ?? `code ${String(code)}`}) and was restarted`;
  }
}
