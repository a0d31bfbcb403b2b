/** HookRunner behaviour with real files and real sandbox/exec processes: the contract, both forms, the log. */
import { afterEach, describe, expect, test } from '@jest/globals';
import { sampleInput } from '../../src/hooks/contract.ts';
import { harness, messages, NORMAL_PHONE_HOOK, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('the Itgrix contract', () => {
  test.each([['{}'], ['[]'], ['null']])('empty data %s cancels, logged as cancelled by customization', async (empty) => {
    h = await harness({ 'process_search_params.js': `module.exports = () => ({ data: ${empty}, state: 'success', action: 'register' });` });
    const outcome = await h.runner.run('process_search_params', sampleInput('process_search_params').params, { callId: 'c-7' });
    expect(outcome).toEqual({ status: 'cancelled', ms: expect.any(Number) });
    const line = h.lines.find((l) => l.message.includes('cancelled by customization'));
    expect(line).toMatchObject({ level: 'info', hook: 'process_search_params', callId: 'c-7' });
    expect(messages(h.lines, 'error')).toEqual([]);
  });

  test('action and filter are passed through; changed params are laid over the input', async () => {
    h = await harness({
      'process_search_params.js': `module.exports = function (input) {
        return {
          data: { PHONE_NUMBER: input.params.PHONE_NUMBER.replace(/^7/, '8'), CRM_SOURCE: null },
          action: 'ignore',
          filter: { contact: { '=ASSIGNED_BY_ID': input.params.USER_ID } },
          state: 'success',
        };
      };`,
    });
    const params = sampleInput('process_search_params').params;
    const outcome = await h.runner.run('process_search_params', params);
    const { conversation: _c, user: _u, CRM_SOURCE: _s, ...rest } = params;
    expect(outcome).toEqual({
      status: 'ok',
      data: { ...rest, PHONE_NUMBER: '89161234567' },
      action: 'ignore',
      filter: { contact: { '=ASSIGNED_BY_ID': 7 } },
      ms: expect.any(Number),
    });
  });

  test('an action the hook does not have is a validation error', async () => {
    h = await harness({ 'process_final_params.js': `module.exports = (i) => ({ data: { DURATION: 0 }, action: 'ignore' });` });
    const outcome = await h.runner.run('process_final_params', sampleInput('process_final_params').params);
    expect(outcome).toMatchObject({ status: 'error', error: `action must be equal to one of the allowed values ("delete", "register")` });
  });

  test('state "error" is an error with the hook\'s message', async () => {
    h = await harness({ 'process_phone_number.js': `module.exports = () => ({ data: { phone: '1' }, state: 'error', message: 'CRM is down' });` });
    expect(await h.runner.run('process_phone_number', { phone: '+79161234567' })).toMatchObject({
      status: 'error', error: 'the hook answered state "error": CRM is down',
    });
  });

  test('export default and async functions work', async () => {
    h = await harness({ 'process_phone_number.js': `export default async function (input) {\n  await null;\n  return { data: { phone: input.params.phone.slice(1) } };\n}\n` });
    expect(await h.runner.run('process_phone_number', { phone: '+79161234567' })).toMatchObject({ status: 'ok', data: { phone: '79161234567' } });
  });

  test('console output reaches the daemon log tagged with hook and call id', async () => {
    h = await harness({
      'process_phone_number.js': `module.exports = function (input) {
        console.log('normalising', input.params.phone, { n: 1 });
        console.warn('careful');
        return { data: { phone: input.params.phone } };
      };`,
    });
    await h.runner.run('process_phone_number', { phone: '+79161234567' }, { callId: '1795324160.126' });
    const lines = h.lines.filter((l) => l['source'] === 'console');
    expect(lines).toEqual([
      expect.objectContaining({ level: 'info', message: 'process_phone_number: normalising +79161234567 {"n":1}', hook: 'process_phone_number', callId: '1795324160.126' }),
      expect.objectContaining({ level: 'warn', message: 'process_phone_number: careful', hook: 'process_phone_number', callId: '1795324160.126' }),
    ]);
  });

  test('console output is capped per call', async () => {
    h = await harness({ 'process_phone_number.js': `module.exports = (i) => { for (let n = 0; n < 80; n++) console.log('line', n); return { data: i.params }; };` });
    await h.runner.run('process_phone_number', { phone: '1' });
    const lines = messages(h.lines.filter((l) => l['source'] === 'console'));
    expect(lines).toHaveLength(51);
    expect(lines.at(-1)).toBe('process_phone_number: 30 more console lines dropped');
  });

  test('a module-level state lives across calls of one version', async () => {
    h = await harness({ 'process_phone_number.js': `let calls = 0;\nmodule.exports = (i) => ({ data: { phone: String(++calls) } });` });
    await h.runner.run('process_phone_number', { phone: '1' });
    expect(await h.runner.run('process_phone_number', { phone: '1' })).toMatchObject({ data: { phone: '2' } });
  });

  test('input that breaks the contract is refused before the script runs', async () => {
    h = await harness({ 'process_phone_number.js': NORMAL_PHONE_HOOK });
    const outcome = await h.runner.run('process_phone_number', { phone: 79161234567 } as unknown as { phone: string });
    expect(outcome).toMatchObject({ status: 'error', error: "the daemon's input breaks the contract: params.phone must be string" });
  });

  test('has(), list() and absent hooks', async () => {
    h = await harness({ 'process_phone_number.js': NORMAL_PHONE_HOOK });
    expect(h.runner.has('process_phone_number')).toBe(true);
    expect(h.runner.has('need_registration')).toBe(false);
    expect(await h.runner.run('need_registration', sampleInput('need_registration').params)).toEqual({ status: 'absent' });
    expect(h.runner.list()).toEqual([
      { hook: 'process_phone_number', file: `${h.dir}/process_phone_number.js`, form: 'js', status: 'active', version: 1 },
    ]);
  });

  test('the old name get_updated_lead_fields is accepted for get_updated_entity_fields', async () => {
    h = await harness({ 'get_updated_lead_fields.js': `module.exports = (i) => ({ data: { UF_CRM_CALL_TRUNK: i.params.trunk }, state: 'success' });` });
    expect(h.runner.has('get_updated_entity_fields')).toBe(true);
    const outcome = await h.runner.run('get_updated_entity_fields', sampleInput('get_updated_entity_fields').params);
    expect(outcome).toMatchObject({ status: 'ok', data: { UF_CRM_CALL_TRUNK: '74951234567' } });
  });

  test('unknown files are reported and not loaded; the preferred file wins over duplicates', async () => {
    h = await harness({
      'process_phone_number.js': NORMAL_PHONE_HOOK,
      'process_phone_number.sh': '#!/bin/sh\necho \'{"data":{"phone":"sh"}}\'\n',
      'helpers.php': '<?php\n',
      'README.md': '# notes\n',
    });
    const warns = messages(h.lines, 'warn');
    expect(warns.some((m) => m.startsWith(`${h!.dir}/helpers.php: not a hook file, ignored`))).toBe(true);
    expect(warns.some((m) => m.includes('README'))).toBe(false);
    expect(warns).toContain(`process_phone_number: ${h.dir}/process_phone_number.sh ignored, ${h.dir}/process_phone_number.js takes precedence`);
    expect(h.runner.list().map((l) => l.hook)).toEqual(['process_phone_number']);
  });

  test('stop() ends everything and later runs are absent, never a throw', async () => {
    h = await harness({ 'process_phone_number.js': NORMAL_PHONE_HOOK });
    await h.runner.stop();
    expect(await h.runner.run('process_phone_number', { phone: '+79161234567' })).toEqual({ status: 'absent' });
  });
});

const NORMAL_PATH_EXEC = '#!/bin/sh\ncat >/dev/null\necho \'{"data": {"path": "/mnt/records/x.wav"}}\'\n';

describe('exec form', () => {
  test('a sh script gets the input on stdin and answers on stdout, with only PATH in its environment', async () => {
    process.env['HOOKS_TEST_SECRET'] = 's3cr3t';
    try {
      h = await harness({
        'process_record_file_path.sh': `#!/bin/sh
input=$(cat)
case "$input" in *'"path":"/var/spool/asterisk/monitor/'*) ;; *) exit 3 ;; esac
names=$(env | cut -d= -f1 | grep -v '^PWD$' | sort | tr '\\n' ' ')
echo "{\\"data\\": {\\"path\\": \\"/mnt/records/$names\\"}, \\"state\\": \\"success\\"}"
`,
      });
      const outcome = await h.runner.run('process_record_file_path', sampleInput('process_record_file_path').params);
      expect(outcome).toMatchObject({ status: 'ok', data: { path: '/mnt/records/PATH ' } });
    } finally {
      delete process.env['HOOKS_TEST_SECRET'];
    }
  });

  test('a python3 script (ported customization style)', async () => {
    h = await harness({
      'process_phone_number.py': `#!/usr/bin/env python3
import json, sys
params = json.load(sys.stdin)["params"]
phone = params["phone"]
if phone.startswith("+7"):
    phone = "8" + phone[2:]
print("normalised", phone, file=sys.stderr)
json.dump({"data": {"phone": phone}, "state": "success"}, sys.stdout)
`,
    }, { timeoutMs: 5000 }); // interpreter start-up (a pyenv shim here) is not what this test is about
    const outcome = await h.runner.run('process_phone_number', { phone: '+79161234567' }, { callId: 'c-9' });
    expect(outcome).toMatchObject({ status: 'ok', data: { phone: '89161234567' } });
    expect(h.lines.find((l) => l['source'] === 'stderr')).toMatchObject({ message: 'process_phone_number: normalised 89161234567', callId: 'c-9' });
  });

  test('garbage on stdout is a clear error', async () => {
    h = await harness({
      'process_phone_number': '#!/bin/sh\ncat >/dev/null\necho \'Warning: Undefined variable $phone in process_phone_number.php\'\n',
      'process_record_file_path.sh': NORMAL_PATH_EXEC,
    });
    const outcome = await h.runner.run('process_phone_number', { phone: '+79161234567' });
    expect(await h.runner.run('process_record_file_path', sampleInput('process_record_file_path').params)).toMatchObject({ status: 'ok' });
    expect(outcome).toMatchObject({ status: 'error', error: 'its stdout is not JSON: "Warning: Undefined variable $phone in process_phone_number.php"' });
    expect(messages(h.lines, 'error')[0]).toMatch(/^E_HOOK process_phone_number \(.*\/process_phone_number\): its stdout is not JSON/);
  });

  test('a script that never exits is killed at the timeout, children included', async () => {
    h = await harness({ 'process_phone_number.sh': '#!/bin/sh\nsleep 30 &\nsleep 30\n', 'process_record_file_path.sh': NORMAL_PATH_EXEC });
    const outcome = await h.runner.run('process_phone_number', { phone: '+79161234567' });
    expect(outcome).toMatchObject({ status: 'error', error: 'timed out after 300 ms (killed)' });
    expect((outcome as { ms: number }).ms).toBeLessThan(2000);
    expect(await h.runner.run('process_record_file_path', sampleInput('process_record_file_path').params)).toMatchObject({ status: 'ok' });
  });

  test('a non-zero exit names the code and the last stderr line', async () => {
    h = await harness({ 'process_phone_number.sh': '#!/bin/sh\necho "PHP Fatal error: oops" >&2\nexit 255\n' });
    expect(await h.runner.run('process_phone_number', { phone: '1' })).toMatchObject({
      status: 'error', error: 'exited with code 255: PHP Fatal error: oops',
    });
  });

  test('a file without the executable bit is reported at load', async () => {
    h = await harness({}, { start: false });
    await h.write('process_phone_number.php', '<?php echo "{}";\n');
    await h.runner.start();
    expect(h.runner.list()).toEqual([expect.objectContaining({
      hook: 'process_phone_number', form: 'exec', status: 'error', lastError: 'is not executable (chmod +x it, and give it a #! line)',
    })]);
  });
});
