import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EventEmitter } from 'node:events';

export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/ami');

export function fixture(name: string): string {
  return path.join(FIXTURES, name.endsWith('.jsonl') ? name : `${name}.jsonl`);
}

/** Polls a condition (no fixed sleep: returns as soon as it holds); fails with `what` after timeoutMs. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The next emission of `event` (its first argument), or a rejection after timeoutMs. */
export function nextEvent<T>(emitter: EventEmitter, event: string, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`timed out waiting for '${event}'`));
    }, timeoutMs);
    const onEvent = (value: T) => {
      clearTimeout(timer);
      emitter.off(event, onEvent);
      resolve(value);
    };
    emitter.on(event, onEvent);
  });
}

/** Deterministic PRNG (mulberry32) so that a failing random chunking can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
