/**
 * Customization hooks inside the real daemon, on real traces: each wired hook changes the Bitrix24 request it
 * governs, and whatever a hostile script does, the call is still registered with the unmodified params.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness, type Harness } from '../support/e2e.ts';

let h: Harness | undefined;
afterEach(async () => { await h?.stop(); h = undefined; });

const js = (body: string) => `module.exports = function (input) { ${body} };`;

async function run(customizations: Record<string, string>, trace = 'inbound-answered'): Promise<Harness> {
  h = await startHarness({ trace, customizations });
  await h.settle();
  return h;
}

const ANSWERED = [
  'register #1 type=2 user=2 phone=+79161234567 line=74951234567 crm_create=1', 'show #1 users=2',
  'finish #1 user=2 status=200 duration=5', 'attachRecord #1 1795324160.126.wav',
];

describe('wired hooks change the request they govern', () => {
  test('process_phone_number rewrites PHONE_NUMBER', async () => {
    await run({ 'process_phone_number.js': js(`return { data: { phone: input.params.phone.replace(/^\\+7/, '8') }, state: 'success' };`) });
    expect(h!.compact()[0]).toBe('register #1 type=2 user=2 phone=89161234567 line=74951234567 crm_create=1');
  });

  test('process_phone_number sees internal numbers too: extension 101 mapped to 102 puts the call on Maria', async () => {
    await run({ 'process_phone_number.js': js(`return { data: { phone: input.params.phone === '101' ? '102' : input.params.phone }, state: 'success' };`) });
    expect(h!.compact()).toEqual([
      'register #1 type=2 user=3 phone=+79161234567 line=74951234567 crm_create=1', 'show #1 users=3',
      'finish #1 user=3 status=200 duration=5', 'attachRecord #1 1795324160.126.wav',
    ]);
  });

  test('need_registration false: nothing reaches Bitrix24 for the call', async () => {
    await run({ 'need_registration.js': js(`return { data: { need_registration: input.params.trunk !== 'provider' }, state: 'success' };`) });
    expect(h!.compact()).toEqual([]);
    expect(h!.logLines.join('')).toContain('need_registration said no');
  });

  test('process_search_params action ignore: not registered', async () => {
    await run({ 'process_search_params.js': js(`return { data: input.params, action: 'ignore', state: 'success' };`) });
    expect(h!.compact()).toEqual([]);
  });

  test('process_registration_params changes the final register params', async () => {
    await run({ 'process_registration_params.js': js(`return { data: { CRM_CREATE: 0, CRM_SOURCE: 'CALL' }, state: 'success' };`) });
    const register = h!.telephony().find((r) => r.method === 'register')!;
    expect(register.params).toMatchObject({ CRM_CREATE: 0, CRM_SOURCE: 'CALL', PHONE_NUMBER: '+79161234567', USER_ID: 2 });
  });

  test('process_final_params changes finish; it sees the conversation', async () => {
    await run({ 'process_final_params.js': js(`return { data: { STATUS_CODE: input.params.conversation.was_answered ? '200' : '304', DURATION: 42, ADD_TO_CHAT: 0 }, state: 'success' };`) });
    const finish = h!.telephony().find((r) => r.method === 'finish')!;
    expect(finish.params).toMatchObject({ STATUS_CODE: '200', DURATION: 42, ADD_TO_CHAT: 0, USER_ID: 2 });
  });

  test('process_final_params action delete: the call is not finished', async () => {
    await run({ 'process_final_params.js': js(`return { data: input.params, action: 'delete', state: 'success' };`) });
    expect(h!.compact().map((l) => l.split(' ')[0])).toEqual(['register', 'show']);
  });

  test('empty data cancels just that request, logged as cancelled by customization', async () => {
    await run({ 'process_final_params.js': js(`return { data: {}, state: 'success' };`) });
    expect(h!.compact().map((l) => l.split(' ')[0])).toEqual(['register', 'show']);
    expect(h!.logLines.join('')).toMatch(/cancelled by customization/);
    expect(h!.logLines.join('')).not.toMatch(/E_HOOK/);
  });

  test('process_record_file_path chooses the file attached', async () => {
    await run({
      'process_record_file_path.js': js(`return { data: { path: input.params.path.replace('1795324160.126.wav', '1795324160.126-copy.wav') }, state: 'success' };`),
    });
    // the rewritten file does not exist: nothing with audio is found, after the ready timeout
    expect(h!.compact().at(-1)).toBe('finish #1 user=2 status=200 duration=5');
  }, 20_000);

  test('an exec-form hook (shell) works the same way', async () => {
    await run({ 'process_phone_number.sh': `#!/bin/sh\nsed 's/+79161234567/79161234567/; s/"params"/"data"/; s/}}$/},"state":"success"}/'\n` });
    expect(h!.compact()[0]).toBe('register #1 type=2 user=2 phone=79161234567 line=74951234567 crm_create=1');
  });
});

const HOSTILE: Record<string, [file: string, text: string]> = {
  'while(true){}': ['process_phone_number.js', js('while (true) {}')],
  'an async infinite loop': ['process_phone_number.js', `module.exports = async function () { while (true) await null; };`],
  'a never-resolving promise': ['process_phone_number.js', js('return new Promise(() => {});')],
  'a growing-array memory bomb': ['process_phone_number.js', js('const a = []; for (;;) a.push(new Array(1e5).fill(1));')],
  'a typed-array memory bomb': ['process_phone_number.js', js('const a = []; for (;;) a.push(new Float64Array(1e8));')],
  'a sync throw': ['process_phone_number.js', js(`throw new Error('boom');`)],
  'an async throw': ['process_phone_number.js', `module.exports = async function () { throw new Error('boom'); };`],
  'process / require / constructor escape': ['process_phone_number.js', js(`const p = this.constructor.constructor('return process')(); return { data: { phone: String(p.pid) + require('fs') }, state: 'success' };`)],
  'reading a file': ['process_phone_number.js', js(`return { data: { phone: require('fs').readFileSync('/etc/passwd', 'utf8') }, state: 'success' };`)],
  'reading an environment variable': ['process_phone_number.js', js(`return { data: { phone: process.env.PATH }, state: 'success' };`)],
  'output of the wrong shape': ['process_phone_number.js', js(`return { data: { phone: 42 }, state: 'success' };`)],
  'a syntax error': ['process_phone_number.js', 'module.exports = function (input) { return {{; };'],
  'an exec hook printing garbage': ['process_phone_number.sh', '#!/bin/sh\necho "this is not json"\n'],
  'an exec hook that never exits': ['process_phone_number.sh', '#!/bin/sh\nsleep 600\n'],
};

describe('hostile scripts: the daemon still registers the call with the unmodified params', () => {
  test.each(Object.keys(HOSTILE))('%s', async (name) => {
    const [file, text] = HOSTILE[name]!;
    await run({ [file]: text });
    expect(h!.compact()).toEqual(ANSWERED);
    const log = h!.logLines.join('');
    expect(log).toMatch(/E_HOOK|syntax|SyntaxError/i);
    expect(log).toContain('process_phone_number');
    expect(log).not.toMatch(/root:x:0:0/);
  }, 20_000);
});

test('hot reload: an edit is used by the next call; a broken edit keeps the previous version', async () => {
  h = await startHarness({ trace: 'inbound-answered', customizations: {
    'process_phone_number.js': js(`return { data: { phone: '+79160000001' }, state: 'success' };`),
  } });
  await h.settle();
  const file = join(h.dir, 'customizations', 'process_phone_number.js');
  let reloaded = h.daemon.hooks.nextReload('process_phone_number');
  writeFileSync(file, js(`return { data: { phone: '+79160000002' }, state: 'success' };`));
  expect((await reloaded).status).toBe('active');
  h.play('inbound-no-answer');
  await h.settle();
  reloaded = h.daemon.hooks.nextReload('process_phone_number');
  writeFileSync(file, 'module.exports = function ( {');
  expect((await reloaded).status).toBe('error');
  h.play('inbound-busy');
  await h.settle();
  const phones = h.telephony().filter((r) => r.method === 'register').map((r) => r.params.PHONE_NUMBER);
  expect(phones).toEqual(['+79160000001', '+79160000002', '+79160000002']);
  expect(h.logLines.join('')).toMatch(/process_phone_number\.js:\d+: SyntaxError/);
}, 30_000);
