/** Hot reload through the real watcher: edit, broken edit, delete, create, and the exec form. */
import { afterEach, expect, test } from '@jest/globals';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { harness, messages, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const phoneHook = (prefix: string) => `module.exports = function (input) {
  return { data: { phone: '${prefix}' + input.params.phone.slice(2) }, state: 'success' };
};
`;

async function watched(files: Record<string, string>): Promise<Harness> {
  return harness(files, { watch: true });
}

test('an edit is swapped in and the next run uses the new version', async () => {
  h = await watched({ 'process_phone_number.js': phoneHook('8') });
  expect(await h.runner.run('process_phone_number', { phone: '+79161234567' })).toMatchObject({ data: { phone: '89161234567' } });
  const reloaded = h.runner.nextReload('process_phone_number');
  await h.write('process_phone_number.js', phoneHook('7'));
  expect(await reloaded).toMatchObject({ hook: 'process_phone_number', status: 'active', version: 2 });
  expect(await h.runner.run('process_phone_number', { phone: '+79161234567' })).toMatchObject({ data: { phone: '79161234567' } });
  expect(h.runner.list()).toEqual([expect.objectContaining({ version: 2, status: 'active' })]);
});

test('a broken edit keeps the previous version active and logs file:line', async () => {
  h = await watched({ 'process_phone_number.js': phoneHook('8') });
  const reloaded = h.runner.nextReload('process_phone_number');
  await h.write('process_phone_number.js', 'module.exports = function (input) {\n  return { data: { phone: } };\n};\n');
  const ev = await reloaded;
  expect(ev).toMatchObject({ status: 'error', version: 1 });
  expect(ev.error).toMatch(/process_phone_number\.js:2: SyntaxError: /);
  expect(messages(h.lines, 'error').join('\n')).toMatch(/process_phone_number\.js:2: SyntaxError: .*; version 1 stays active/);
  expect(await h.runner.run('process_phone_number', { phone: '+79161234567' })).toMatchObject({ status: 'ok', data: { phone: '89161234567' } });
  expect(h.runner.list()).toEqual([expect.objectContaining({ status: 'active', version: 1, lastError: ev.error })]);
});

test('deleting the file removes the hook; creating one adds it', async () => {
  h = await watched({ 'process_phone_number.js': phoneHook('8') });
  let reloaded = h.runner.nextReload('process_phone_number');
  await rm(path.join(h.dir, 'process_phone_number.js'));
  expect(await reloaded).toMatchObject({ status: 'removed' });
  expect(h.runner.has('process_phone_number')).toBe(false);
  expect(await h.runner.run('process_phone_number', { phone: '+79161234567' })).toEqual({ status: 'absent' });

  reloaded = h.runner.nextReload('need_registration');
  await h.write('need_registration.js', 'module.exports = () => ({ data: { need_registration: false } });');
  expect(await reloaded).toMatchObject({ status: 'active', version: 1 });
  expect(h.runner.has('need_registration')).toBe(true);
});

test('an exec hook is picked up, and replaced by a JS file for the same hook', async () => {
  h = await watched({});
  let reloaded = h.runner.nextReload('process_phone_number');
  await h.write('process_phone_number.sh', '#!/bin/sh\ncat >/dev/null\necho \'{"data":{"phone":"from-sh"}}\'\n', true);
  expect(await reloaded).toMatchObject({ status: 'active', version: 1 });
  expect(await h.runner.run('process_phone_number', { phone: '1' })).toMatchObject({ data: { phone: 'from-sh' } });

  reloaded = h.runner.nextReload('process_phone_number');
  await h.write('process_phone_number.js', phoneHook('8'));
  expect(await reloaded).toMatchObject({ status: 'active', version: 2 });
  expect(await h.runner.run('process_phone_number', { phone: '+79161234567' })).toMatchObject({ data: { phone: '89161234567' } });
});
