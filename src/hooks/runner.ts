/**
 * HookRunner: the customizations dir, loaded, watched and run. The call flows ask `has(hook)` (cheap) and
 * `run(hook, params, { callId })`, which never throws: whatever a script does, the outcome says what to do, and a
 * failure is one E_HOOK log line naming hook, file, call id and reason, after which the call goes on with the
 * unmodified params.
 *
 * Hot reload is compile → validate → swap: a changed file is read and syntax-checked (compile only) before it
 * replaces the version in use; a broken edit leaves the previous version active.
 */
import { EventEmitter } from 'node:events';
import { access, constants, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../log/logger.ts';
import { HOOK_NAMES, type HookName, type HookOutcome, type HookParams } from './contract.ts';
import { runExecHook } from './exec-hook.ts';
import { classifyFile, type HookFile, type HookForm } from './files.ts';
import { MAX_SCRIPT_BYTES, checkSyntax, wrapScript } from './js-source.ts';
import { DEFAULT_LIMITS, type SandboxLimits } from './sandbox-process.ts';
import { SandboxPool } from './sandbox-pool.ts';
import { HookValidators, interpretOutput } from './validate.ts';

export interface HookRunnerOptions {
  dir: string;
  /** Per-call limit, both forms (default 1000 ms). */
  timeoutMs?: number;
  /** Sandbox processes for JS hooks (default 1, ~45 MB each). */
  poolSize?: number;
  /** Hot reload (default true). */
  watch?: boolean;
  log: Logger;
  /** Quiet time after a file event before it is reloaded (default 50 ms). */
  debounceMs?: number;
  limits?: Partial<SandboxLimits>;
}

export interface HookListing {
  hook: HookName;
  /** The file in use (or the one that failed to load, when none is in use). */
  file: string;
  form: HookForm;
  status: 'active' | 'error';
  lastError?: string;
  version: number;
}

export interface ReloadEvent {
  hook: HookName;
  status: 'active' | 'error' | 'removed';
  file?: string;
  version: number;
  error?: string;
}

export interface HookErrorEvent {
  hook: HookName;
  file: string;
  phase: 'load' | 'run';
  error: string;
  callId?: string;
}

interface Entry {
  hook: HookName;
  /** Absolute path. */
  file: string;
  /** How messages name the file: relative to the working directory when inside it. */
  shown: string;
  form: HookForm;
  version: number;
  /** The wrapped source (JS form). */
  source?: string;
  active: boolean;
  lastError?: string;
}

type Events = { reloaded: [ReloadEvent]; error: [HookErrorEvent] };
type RunOutcome<H extends HookName> = Exclude<HookOutcome<H>, { status: 'absent' }>;

export class HookRunner extends EventEmitter<Events> {
  readonly #dir: string;
  readonly #timeoutMs: number;
  readonly #watch: boolean;
  readonly #debounceMs: number;
  readonly #limits: SandboxLimits;
  readonly #log: Logger;
  readonly #validators = new HookValidators();
  readonly #pool: SandboxPool;
  readonly #entries = new Map<HookName, Entry>();
  /** Versions only grow (also across delete/re-create), so `hook@version` names one source for the sandbox. */
  readonly #versions = new Map<HookName, number>();
  readonly #debounce = new Map<HookName, NodeJS.Timeout>();
  readonly #stopping = new AbortController();
  #reloads: Promise<void> = Promise.resolve();
  #watcher: FSWatcher | undefined;

  constructor(opts: HookRunnerOptions) {
    super();
    this.#dir = path.resolve(opts.dir);
    this.#timeoutMs = opts.timeoutMs ?? 1000;
    this.#watch = opts.watch ?? true;
    this.#debounceMs = opts.debounceMs ?? 50;
    this.#limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.#log = opts.log.child({ component: 'hooks' });
    this.#pool = new SandboxPool({ size: opts.poolSize ?? 1, limits: this.#limits, log: this.#log });
  }

  async start(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch (err) {
      this.#log.warn(`customizations dir ${this.#dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): no hooks`);
      return;
    }
    const hooks = new Set<HookName>();
    for (const name of names.sort()) {
      const kind = classifyFile(name);
      if (kind === 'unknown') this.#warnUnknown(name);
      else if (kind !== 'ignore') hooks.add(kind.hook);
    }
    for (const hook of hooks) await this.#reload(hook);
    if (this.#watch) await this.#startWatcher();
    if ([...this.#entries.values()].some((e) => e.active && e.form === 'js')) await this.#pool.warm();
  }

  /** Kills the sandbox children and running exec hooks, closes the watcher. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    for (const timer of this.#debounce.values()) clearTimeout(timer);
    this.#debounce.clear();
    await this.#watcher?.close();
    this.#watcher = undefined;
    await this.#reloads;
    await this.#pool.stop();
  }

  has(hook: HookName): boolean {
    return this.#entries.get(hook)?.active === true;
  }

  list(): HookListing[] {
    return HOOK_NAMES.flatMap((hook) => {
      const e = this.#entries.get(hook);
      if (!e) return [];
      const item: HookListing = { hook, file: e.shown, form: e.form, status: e.active ? 'active' : 'error', version: e.version };
      if (e.lastError !== undefined) item.lastError = e.lastError;
      return [item];
    });
  }

  /** The next 'reloaded' event for `hook` (any hook when omitted). Subscribe before touching the file. */
  nextReload(hook?: HookName): Promise<ReloadEvent> {
    return new Promise((resolve) => {
      const listener = (ev: ReloadEvent) => {
        if (hook !== undefined && ev.hook !== hook) return;
        this.off('reloaded', listener);
        resolve(ev);
      };
      this.on('reloaded', listener);
    });
  }

  /** Never throws. */
  async run<H extends HookName>(hook: H, params: HookParams<H>, ctx: { callId?: string } = {}): Promise<HookOutcome<H>> {
    const entry = this.#entries.get(hook);
    if (!entry?.active || this.#stopping.signal.aborted) return { status: 'absent' };
    const started = performance.now();
    let outcome: RunOutcome<H>;
    try {
      outcome = await this.#execute(entry, hook, params, ctx.callId);
    } catch (err) {
      outcome = { status: 'error', error: `internal: ${(err as Error).message}`, ms: 0 };
    }
    outcome.ms = Math.round((performance.now() - started) * 1000) / 1000;
    const meta = { hook, file: entry.shown, ...(ctx.callId !== undefined ? { callId: ctx.callId } : {}) };
    if (outcome.status === 'cancelled') {
      this.#log.info(`${hook} (${entry.shown}): cancelled by customization (empty data)`, meta);
    } else if (outcome.status === 'error') {
      this.#log.error(`E_HOOK ${hook} (${entry.shown}): ${outcome.error}; the call goes on with unmodified params`, { ...meta, code: 'E_HOOK' });
      this.#emitError({ hook, file: entry.shown, phase: 'run', error: outcome.error, ...(ctx.callId !== undefined ? { callId: ctx.callId } : {}) });
    } else if (this.#log.isDebugEnabled()) {
      // Guarded: a filtered-out winston call still costs ~50 µs, a sixth of the per-call budget.
      this.#log.debug(`${hook} (${entry.shown}): ok in ${outcome.ms} ms`, meta);
    }
    return outcome;
  }

  async #execute<H extends HookName>(entry: Entry, hook: H, params: HookParams<H>, callId: string | undefined): Promise<RunOutcome<H>> {
    const input = { params };
    const checked = this.#validators.checkInput(hook, input);
    if (!checked.ok) return { status: 'error', error: `the daemon's input breaks the contract: ${checked.error}`, ms: 0 };
    const json = JSON.stringify(input);
    if (json.length > this.#limits.maxMessageBytes) {
      return { status: 'error', error: `the input is larger than ${this.#limits.maxMessageBytes} bytes`, ms: 0 };
    }
    const raw = entry.form === 'js'
      ? await this.#pool.run({ key: `${hook}@${entry.version}`, hook, file: entry.shown, src: entry.source!, input: json, timeoutMs: this.#timeoutMs })
      : await runExecHook(entry.file, json, {
        timeoutMs: this.#timeoutMs, maxOutputBytes: this.#limits.maxMessageBytes, cwd: this.#dir, signal: this.#stopping.signal,
      });
    for (const [level, text] of raw.logs) {
      this.#log.log(['debug', 'info', 'warn', 'error'].includes(level) ? level : 'info', `${hook}: ${text}`,
        { hook, ...(callId !== undefined ? { callId } : {}), source: entry.form === 'js' ? 'console' : 'stderr' });
    }
    if (!raw.ok) return { status: 'error', error: raw.error, ms: 0 };
    return interpretOutput(this.#validators, hook, params, JSON.parse(raw.out) as unknown);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Loading

  async #startWatcher(): Promise<void> {
    const watcher = watch(this.#dir, { ignoreInitial: true, depth: 0 });
    this.#watcher = watcher;
    watcher.on('all', (event, file) => {
      if (path.dirname(file) !== this.#dir || !['add', 'change', 'unlink'].includes(event)) return;
      const kind = classifyFile(path.basename(file));
      if (kind === 'unknown' && event === 'add') this.#warnUnknown(path.basename(file));
      if (typeof kind === 'object') this.#schedule(kind.hook);
    });
    watcher.on('error', (err) => this.#log.warn(`watching ${this.#dir} failed: ${(err as Error).message}`));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  }

  #schedule(hook: HookName): void {
    clearTimeout(this.#debounce.get(hook));
    this.#debounce.set(hook, setTimeout(() => {
      this.#debounce.delete(hook);
      // One reload at a time: two hooks' files may change together, and a file may change again mid-reload.
      this.#reloads = this.#reloads.then(() => this.#reload(hook));
    }, this.#debounceMs));
  }

  /** Finds the file for `hook`, loads it and swaps it in, or keeps what was there and reports why not. */
  async #reload(hook: HookName): Promise<void> {
    if (this.#stopping.signal.aborted) return;
    const candidates = await this.#candidates(hook);
    const previous = this.#entries.get(hook);
    const chosen = candidates[0];
    if (!chosen) {
      if (!previous) return;
      this.#entries.delete(hook);
      this.#log.info(`${hook}: ${previous.shown} removed, hook inactive`);
      this.emit('reloaded', { hook, status: 'removed', version: previous.version });
      return;
    }
    for (const other of candidates.slice(1)) {
      this.#log.warn(`${hook}: ${this.#shown(other.file)} ignored, ${this.#shown(chosen.file)} takes precedence`);
    }
    const file = chosen.file;
    const shown = this.#shown(file);
    const loaded = await this.#load(chosen, shown);
    if (typeof loaded === 'string') {
      const error = loaded;
      this.#log.error(`E_HOOK ${hook} (${shown}): cannot load: ${error}${previous?.active ? `; version ${previous.version} stays active` : ''}`,
        { code: 'E_HOOK', hook, file: shown });
      if (previous?.active) previous.lastError = error;
      else this.#entries.set(hook, { hook, file, shown, form: chosen.form, version: previous?.version ?? 0, active: false, lastError: error });
      this.emit('reloaded', { hook, status: 'error', file: shown, version: previous?.active ? previous.version : 0, error });
      this.#emitError({ hook, file: shown, phase: 'load', error });
      return;
    }
    const version = (this.#versions.get(hook) ?? 0) + 1;
    this.#versions.set(hook, version);
    const entry: Entry = { hook, file, shown, form: chosen.form, version, active: true };
    if (loaded.source !== undefined) entry.source = loaded.source;
    this.#entries.set(hook, entry);
    this.#log.info(`${hook}: ${shown} loaded (version ${version}, ${chosen.form})`);
    this.emit('reloaded', { hook, status: 'active', file: shown, version });
    if (chosen.form === 'js' && this.#watcher) void this.#pool.warm();
  }

  async #candidates(hook: HookName): Promise<Array<HookFile & { file: string }>> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch {
      return [];
    }
    const found: Array<HookFile & { file: string }> = [];
    for (const name of names) {
      const kind = classifyFile(name);
      if (typeof kind !== 'object' || kind.hook !== hook) continue;
      const file = path.join(this.#dir, name);
      const st = await stat(file).catch(() => undefined);
      if (st?.isFile()) found.push({ ...kind, file });
    }
    return found.sort((a, b) => a.rank - b.rank);
  }

  /** `{ source }` for a JS hook, `{}` for an executable, or why the file cannot be used. */
  async #load(chosen: HookFile & { file: string }, shown: string): Promise<{ source?: string } | string> {
    if (chosen.form === 'exec') {
      try {
        await access(chosen.file, constants.X_OK);
        return {};
      } catch {
        return 'is not executable (chmod +x it, and give it a #! line)';
      }
    }
    const st = await stat(chosen.file);
    if (st.size > MAX_SCRIPT_BYTES) return `is larger than ${MAX_SCRIPT_BYTES} bytes`;
    const source = wrapScript(await readFile(chosen.file, 'utf8'));
    return checkSyntax(source, shown) ?? { source };
  }

  #shown(file: string): string {
    const rel = path.relative(process.cwd(), file);
    return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
  }

  #warnUnknown(name: string): void {
    this.#log.warn(`${this.#shown(path.join(this.#dir, name))}: not a hook file, ignored (hooks: ${HOOK_NAMES.join(', ')}; ` +
      `JS as <hook>.js, executables as <hook>, <hook>.php, <hook>.py or <hook>.sh)`);
  }

  /** 'error' is only emitted to listeners: an EventEmitter 'error' without one would throw. */
  #emitError(ev: HookErrorEvent): void {
    if (this.listenerCount('error') > 0) this.emit('error', ev);
  }
}
