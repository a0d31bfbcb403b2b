/**
 * Every example in customizations/examples runs in the real sandbox on its hook's sample input and passes
 * validation; a few behaviours the README promises are checked on other inputs too.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOOK_NAMES, sampleInput, type HookName } from '../../src/hooks/contract.ts';
import { harness, type Harness } from './helpers.ts';

const EXAMPLES = fileURLToPath(new URL('../../customizations/examples/', import.meta.url));
const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.js')).sort();

let h: Harness;
beforeAll(async () => {
  h = await harness({}, { start: false, timeoutMs: 1000 });
  for (const f of files) await copyFile(path.join(EXAMPLES, f), path.join(h.dir, f));
  await h.runner.start();
});
afterAll(async () => {
  await h.close();
});

test('there is one example per hook', () => {
  expect(files.map((f) => f.replace(/\.js$/, ''))).toEqual([...HOOK_NAMES].sort());
  expect(h.runner.list().filter((l) => l.status === 'active')).toHaveLength(HOOK_NAMES.length);
});

describe('each example passes validation on its sample input', () => {
  test.each([...HOOK_NAMES])('%s', async (hook: HookName) => {
    const outcome = await h.runner.run(hook, sampleInput(hook).params as never, { callId: '1795324160.126' });
    expect(outcome).toMatchObject({ status: 'ok' });
  });
});

describe('what the examples do', () => {
  test('phone numbers: 8 / 7 / 10-digit Russian forms become E.164, extensions stay', async () => {
    const phones = ['89161234567', '79161234567', '9161234567', '+7 (916) 123-45-67', '101', '+442071234567'];
    const out = await Promise.all(phones.map((phone) => h.runner.run('process_phone_number', { phone })));
    expect(out.map((o) => (o.status === 'ok' ? o.data.phone : o.status))).toEqual([
      '+79161234567', '+79161234567', '+79161234567', '+79161234567', '101', '+442071234567',
    ]);
  });

  test('need_registration black-lists the fax trunk', async () => {
    const params = { ...sampleInput('need_registration').params, trunk: 'fax-provider' };
    expect(await h.runner.run('need_registration', params)).toMatchObject({ status: 'ok', data: { need_registration: false } });
  });

  test('originate: a mobile number goes out in 8-format through the GSM context', async () => {
    const params = { ...sampleInput('process_originate_params').params, extension: '+79161234567' };
    expect(await h.runner.run('process_originate_params', params)).toMatchObject({
      status: 'ok',
      data: { channel: 'PJSIP/101', context: 'outbound-gsm', extension: '89161234567', priority: '1', variable: { B24_CLICK_TO_CALL: '1' } },
    });
  });

  test('the recording path is rewritten to the mount', async () => {
    expect(await h.runner.run('process_record_file_path', sampleInput('process_record_file_path').params)).toMatchObject({
      data: { path: '/mnt/asterisk-records/2026/11/22/1795324160.126.wav' },
    });
  });

  test('the task deadline is tomorrow 10:00 Moscow', async () => {
    const outcome = await h.runner.run('process_task_creation_params', sampleInput('process_task_creation_params').params);
    const moscowNow = new Date(Date.now() + 3 * 3600 * 1000);
    const tomorrow = new Date(Date.UTC(moscowNow.getUTCFullYear(), moscowNow.getUTCMonth(), moscowNow.getUTCDate() + 1));
    expect(outcome).toMatchObject({
      status: 'ok',
      data: { arNewTaskData: { DEADLINE: `${tomorrow.toISOString().slice(0, 10)}T10:00:00+03:00`, RESPONSIBLE_ID: 7, UF_CRM_TASK: ['C_651'] } },
    });
  });

  test('the search filter keeps only the contacts', async () => {
    expect(await h.runner.run('get_search_filter', sampleInput('get_search_filter').params)).toMatchObject({
      data: { entities: [{ CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 651 }] },
    });
  });

  test('a missed call that rang under 5 s is deleted', async () => {
    const params = sampleInput('process_final_params').params;
    params.conversation = { ...params.conversation, was_answered: false, answered_at: '', ended_at: '2026-11-22T08:09:23+03:00' };
    params.DURATION = 0;
    params.STATUS_CODE = '304';
    expect(await h.runner.run('process_final_params', params)).toMatchObject({ status: 'ok', action: 'delete', data: { STATUS_CODE: '304', DURATION: 0 } });
  });

  test('a short service number is not registered', async () => {
    const params = { ...sampleInput('process_search_params').params, PHONE_NUMBER: '0611' };
    expect(await h.runner.run('process_search_params', params)).toMatchObject({ status: 'ok', action: 'ignore' });
  });
});
