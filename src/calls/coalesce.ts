/**
 * Merges card intents that arrive together: a queue with `ringall` rings every member within a millisecond,
 * producing one `show` per member; Bitrix24 takes a USER_ID array, so consecutive shows (or hides) of the same
 * registration become one request. Only adjacent intents of the same call merge, so ordering never changes.
 */
import type { Intent } from './intents.ts';

export function coalesceCards(intents: readonly Intent[]): Intent[] {
  const out: Intent[] = [];
  for (const intent of intents) {
    const prev = out[out.length - 1];
    if ((intent.kind === 'show' || intent.kind === 'hide') && prev && prev.kind === intent.kind
      && prev.callKey === intent.callKey && prev.regId === intent.regId) {
      out[out.length - 1] = { ...prev, extensions: [...new Set([...prev.extensions, ...intent.extensions])] };
      continue;
    }
    out.push(intent);
  }
  return out;
}
