/**
 * Turns a script file into the source the sandbox evaluates, and checks its syntax in the host (compile only:
 * `new vm.Script` parses, it never runs anything).
 *
 * A script is evaluated as the body of `function (module, exports) { ... }`, so both `module.exports = fn` and
 * `export default fn` work (the latter is rewritten to the former, keeping line numbers). Line 1 is shared with the
 * wrapper's opening, so messages point at the right line; only columns on line 1 are shifted.
 */
import vm from 'node:vm';

/** Larger scripts are refused: they travel to the sandbox as text on every child (re)start. */
export const MAX_SCRIPT_BYTES = 512 * 1024;

/** The global the sandbox prelude defines; the wrapped source hands the module factory to it. */
export const RUNTIME_GLOBAL = '__hook_runtime__';

export function wrapScript(source: string): string {
  const body = source.replace(/^(\s*)export\s+default\s+/m, '$1module.exports = ');
  return `${RUNTIME_GLOBAL}.install(function (module, exports) {${body}\n});`;
}

/** `undefined` when the wrapped source compiles; otherwise `file:line: SyntaxError: message`. */
export function checkSyntax(wrapped: string, file: string): string | undefined {
  try {
    new vm.Script(wrapped, { filename: file });
    return undefined;
  } catch (err) {
    return describeSyntaxError(err, file);
  }
}

function describeSyntaxError(thrown: unknown, file: string): string {
  // Duck-typed, not `instanceof Error`: vm errors may come from another realm (e.g. under a test runner).
  const err = thrown as { name?: unknown; message?: unknown; stack?: unknown };
  if (typeof err?.message !== 'string') return `${file}: ${String(thrown)}`;
  // Node puts "file:line" on the first line of a SyntaxError's stack.
  const where = typeof err.stack === 'string' ? err.stack.split('\n', 1)[0]! : file;
  const location = where.startsWith(file) ? where : file;
  const hint = /\bexport\b|\bimport\b/.test(err.message)
    ? ' (a script may only `export default function (input) {...}` or set `module.exports`; imports are not available)'
    : '';
  return `${location}: ${String(err.name)}: ${err.message}${hint}`;
}
