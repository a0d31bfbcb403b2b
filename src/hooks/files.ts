/**
 * Which file in the customizations dir is which hook. `<hook>.js` is a sandboxed script; `<hook>`, `<hook>.php`,
 * `<hook>.py`, `<hook>.sh` are executables. When several files exist for one hook, the first in this order wins
 * (current names before the legacy alias), and the others are reported.
 */
import { resolveHookName, type HookName } from './contract.ts';

export type HookForm = 'js' | 'exec';

export interface HookFile {
  hook: HookName;
  form: HookForm;
  /** Lower wins. */
  rank: number;
}

const EXTENSIONS: ReadonlyArray<[string, HookForm]> = [['.js', 'js'], ['', 'exec'], ['.php', 'exec'], ['.py', 'exec'], ['.sh', 'exec']];

/** Files nobody would mistake for a hook: skipped without a warning. */
function isNoise(name: string): boolean {
  return name.startsWith('.') || name.endsWith('~') || /\.(md|txt|swp|swx|bak|orig|json|d\.ts)$/i.test(name) || /^readme/i.test(name);
}

/** A hook file, 'ignore' for noise, or 'unknown' for a file that looks meant as a hook but is not one. */
export function classifyFile(name: string): HookFile | 'ignore' | 'unknown' {
  if (isNoise(name)) return 'ignore';
  for (const [i, [ext, form]] of EXTENSIONS.entries()) {
    if (ext !== '' && !name.endsWith(ext)) continue;
    const base = ext === '' ? name : name.slice(0, -ext.length);
    if (ext === '' && base.includes('.')) continue;
    const hook = resolveHookName(base);
    if (hook) return { hook, form, rank: i + (hook === base ? 0 : EXTENSIONS.length) };
  }
  return 'unknown';
}
