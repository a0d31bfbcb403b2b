/**
 * The sandbox child process. It is started by sandbox-process.ts under the Node permission model (it may read only
 * this file, so it imports nothing but `node:` builtins), with an empty environment, a small heap and an
 * address-space ulimit. It reads newline-delimited JSON requests on stdin and answers on stdout; only strings cross
 * between this process and the scripts' contexts, and between this process and the daemon.
 *
 * Each script version runs in its own `vm` context with its own microtask queue (`microtaskMode: 'afterEvaluate'`),
 * so one evaluation covers a hook's async code too. A context is reused between calls (module-level state in a
 * script lives until the next reload or child restart).
 *
 * Time limits: a script's top-level code (run once per version per child) is evaluated with the vm `timeout`. Calls
 * are not: a vm `timeout` starts a watchdog thread per evaluation, ~0.35 ms each on a 2-core box, which would be
 * 2-3× the whole per-call budget. A runaway call is instead stopped by the daemon's watchdog, which SIGKILLs this
 * process at the hook's timeout (the daemon then starts a fresh one). A promise that is still pending once the
 * microtasks ran out can never settle (there are no timers or I/O here), so it fails at once.
 */
import vm from 'node:vm';

/**
 * Requests: {t: 'call', id, key: '<hook>@<version>', hook, file, src?, input, timeoutMs}; `src` is present when
 * the daemon does not know this child has `key` compiled. Replies: {id, ok, out?, error?, logs?}.
 */

const MAX_OUTPUT = Number(process.argv[2] ?? 262144);
const MAX_LOG_LINES = 50;
const MAX_LOG_LINE = 1000;

/**
 * Defines `console` and the runtime object inside a fresh context. Runs before any script code, so the captured
 * JSON/Promise functions are the pristine ones; a script that tampers with builtins later can only break itself.
 */
const PRELUDE = new vm.Script(`(function (g) {
  'use strict';
  const stringify = JSON.stringify, parse = JSON.parse, P = Promise, freeze = Object.freeze, define = Object.defineProperty;
  let logs = [], dropped = 0, fn = null, result = null;
  function text(v) {
    if (typeof v === 'string') return v;
    try { const s = stringify(v); return s === undefined ? String(v) : s; } catch (e) {}
    try { return String(v); } catch (e) { return '[unprintable]'; }
  }
  function logger(level) {
    return function () {
      if (logs.length >= ${MAX_LOG_LINES}) { dropped++; return; }
      let line = '';
      for (let i = 0; i < arguments.length; i++) line += (i ? ' ' : '') + text(arguments[i]);
      if (line.length > ${MAX_LOG_LINE}) line = line.slice(0, ${MAX_LOG_LINE}) + '…';
      logs.push([level, line]);
    };
  }
  define(g, 'console', { value: freeze({ log: logger('info'), info: logger('info'), warn: logger('warn'), error: logger('error'), debug: logger('debug') }) });
  function describe(e) {
    try {
      if (e !== null && typeof e === 'object' && typeof e.message === 'string') {
        const name = typeof e.name === 'string' ? e.name : 'Error';
        let stack = '';
        // Reading .stack formats the error, which throws for odd names (a Symbol, say).
        try { if (typeof e.stack === 'string') stack = '\\n' + e.stack; } catch (x) {}
        return name + ': ' + e.message + stack;
      }
    } catch (x) {}
    return 'threw ' + text(e);
  }
  function settle(v) {
    if (v === undefined) return { ok: false, error: 'the hook returned nothing (expected {"data": {...}, "state": "success"})' };
    let out;
    try { out = stringify(v); } catch (e) { return { ok: false, error: 'the returned value is not JSON: ' + describe(e) }; }
    if (typeof out !== 'string') return { ok: false, error: 'the returned value is not JSON' };
    return { ok: true, out: out };
  }
  define(g, '__hook_runtime__', { value: freeze({
    install(factory) {
      const module = { exports: {} };
      try { factory(module, module.exports); } catch (e) { return 'the script failed while loading: ' + describe(e); }
      const ex = module.exports;
      fn = typeof ex === 'function' ? ex : (ex !== null && typeof ex === 'object' && typeof ex.default === 'function' ? ex.default : null);
      return fn ? '' : 'the script exports no function (write module.exports = function (input) {...} or export default function (input) {...})';
    },
    call(inputJson) {
      logs = []; dropped = 0; result = null;
      let r;
      try { r = fn(parse(inputJson)); } catch (e) { result = { ok: false, error: describe(e) }; return; }
      let thenable;
      try { thenable = r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function'; }
      catch (e) { result = { ok: false, error: describe(e) }; return; }
      if (!thenable) { result = settle(r); return; }
      P.resolve(r).then(function (v) { result = settle(v); }, function (e) { result = { ok: false, error: 'rejected: ' + describe(e) }; });
    },
    collect() {
      const res = result || { ok: false, error: 'the promise returned by the hook never settled (the sandbox has no timers or I/O, so nothing can resolve it later)' };
      if (dropped) logs.push(['warn', dropped + ' more console lines dropped']);
      res.logs = logs;
      return stringify(res);
    },
  }) });
})(this);`, { filename: 'hook-prelude.js' });

const CALL = new vm.Script('__hook_runtime__.call(__hook_input__)', { filename: 'hook-call.js' });
const COLLECT = new vm.Script('__hook_runtime__.collect()', { filename: 'hook-collect.js' });

const scripts = new Map();
const contexts = new Map();

function send(reply) {
  let line = JSON.stringify(reply);
  if (line.length > MAX_OUTPUT + 64 * 1024) {
    line = JSON.stringify({ id: reply.id, ok: false, error: `the hook's output is larger than ${MAX_OUTPUT} bytes` });
  }
  process.stdout.write(line + '\n');
}

/** "TypeError: x is not a function\n    at ... (file:3:9)" → "TypeError: x is not a function (file:3:9)". */
function oneLine(error, file) {
  const [first = error, ...rest] = error.split('\n');
  const frame = rest.find((l) => l.includes(file));
  const at = frame?.match(/:(\d+):(\d+)\)?\s*$/);
  return at ? `${first} (${file}:${at[1]}:${at[2]})` : first;
}

function load(req) {
  const known = scripts.get(req.key);
  if (known) return known;
  if (req.src === undefined) return `internal: ${req.key} is not loaded in this sandbox process`;
  for (const key of [...scripts.keys()]) {
    if (key.startsWith(req.hook + '@')) { scripts.delete(key); contexts.delete(key); }
  }
  try {
    const script = new vm.Script(req.src, { filename: req.file });
    scripts.set(req.key, script);
    return script;
  } catch (err) {
    return `${req.file}: ${String(err?.message ?? 'does not compile')}`;
  }
}

function handle(req) {
  const script = load(req);
  if (typeof script === 'string') return send({ id: req.id, ok: false, error: script });
  const deadline = performance.now() + req.timeoutMs;
  const left = () => Math.max(1, Math.ceil(deadline - performance.now()));
  try {
    let ctx = contexts.get(req.key);
    if (!ctx) {
      ctx = vm.createContext(Object.create(null), {
        name: req.file,
        codeGeneration: { strings: false, wasm: false },
        microtaskMode: 'afterEvaluate',
      });
      PRELUDE.runInContext(ctx);
      const installed = script.runInContext(ctx, { timeout: left() });
      if (installed !== '') {
        const error = typeof installed === 'string' ? oneLine(installed, req.file) : 'the script did not load';
        return send({ id: req.id, ok: false, error });
      }
      contexts.set(req.key, ctx);
    }
    ctx['__hook_input__'] = req.input;
    CALL.runInContext(ctx);
    const collected = COLLECT.runInContext(ctx);
    if (typeof collected !== 'string') return send({ id: req.id, ok: false, error: 'the hook broke the sandbox runtime' });
    const res = JSON.parse(collected);
    if (!res.ok) return send({ id: req.id, ok: false, error: oneLine(String(res.error), req.file), logs: res.logs });
    if ((res.out ?? '').length > MAX_OUTPUT) {
      return send({ id: req.id, ok: false, error: `the hook's output is larger than ${MAX_OUTPUT} bytes`, logs: res.logs });
    }
    send({ id: req.id, ok: true, out: res.out, logs: res.logs });
  } catch (err) {
    // Only the runtime's own failures get here (the scripts' throws are caught inside their context): above all
    // the load-time vm timeout. The context may hold unfinished work, so it is dropped.
    contexts.delete(req.key);
    // Duck-typed: the vm's errors are not necessarily instances of this realm's Error.
    const timedOut = err?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT';
    send({ id: req.id, ok: false, error: timedOut ? `timed out after ${req.timeoutMs} ms while loading` : `sandbox failure: ${String(err?.message ?? 'unknown')}` });
  }
}

let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  pending += chunk;
  let nl;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    if (line) handle(JSON.parse(line));
  }
});
// The daemon closing the pipe (it stopped or died) ends the child.
process.stdin.on('end', () => process.exit(0));
process.stdout.write('{"t":"ready"}\n');
