/** Every error code the daemon can log is documented for admins in README.md's error table (and vice versa). */
import { expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES } from '../src/errors.ts';

test('README.md documents exactly the error catalogue', () => {
  const readme = readFileSync(join(import.meta.dirname, '../README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('## Errors'), readme.indexOf('## For developers'));
  const documented = [...table.matchAll(/^\| `(E_[A-Z_]+)` \|/gm)].map((m) => m[1]);
  expect(documented.sort()).toEqual(Object.keys(ERROR_CODES).sort());
});
