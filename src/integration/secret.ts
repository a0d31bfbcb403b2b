import { timingSafeEqual } from 'node:crypto';

/** Compares a presented token with the expected one in constant time (no timing hint about how much matched). */
export function sameSecret(given: string | undefined, expected: string | undefined): boolean {
  if (!given || !expected) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
