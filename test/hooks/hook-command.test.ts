/** The `hook` CLI command against a real customizations dir. */
import { afterEach, beforeEach, expect, test } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { runHookCommand } from '../../src/cli/hook-command.ts';
import { sampleInput } from '../../src/hooks/contract.ts';
import { NORMAL_PHONE_HOOK } from './helpers.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'hook-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function cli(args: string[], stdinText = '') {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  stdin.end(stdinText);
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => { out += c.toString(); });
  stderr.on('data', (c: Buffer) => { err += c.toString(); });
  const code = await runHookCommand(args, { stdout, stderr, stdin }, { dir, timeoutMs: 500 });
  return { code, out, err };
}

test('hook sample prints the Itgrix-style input', async () => {
  const r = await cli(['sample', 'process_record_file_path']);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.out)).toEqual(sampleInput('process_record_file_path'));
});

test('hook sample accepts the legacy name', async () => {
  const r = await cli(['sample', 'get_updated_lead_fields']);
  expect(JSON.parse(r.out)).toEqual(sampleInput('get_updated_entity_fields'));
});

test('hook list shows active and broken hooks', async () => {
  await writeFile(path.join(dir, 'process_phone_number.js'), NORMAL_PHONE_HOOK);
  await writeFile(path.join(dir, 'need_registration.js'), 'module.exports = function ( {');
  const r = await cli(['list']);
  expect(r.code).toBe(1);
  const lines = r.out.split('\n');
  expect(lines[0]).toBe(`customizations dir: ${dir}`);
  expect(lines).toContainEqual(expect.stringMatching(/^process_phone_number\s+active\s+js\s+v1\s+.*process_phone_number\.js$/));
  expect(lines).toContainEqual(expect.stringMatching(/^need_registration\s+error\s+js\s+v0\s+.*need_registration\.js$/));
  expect(r.out).toMatch(/ {4}error: .*need_registration\.js:\d+: SyntaxError/);
});

test('hook test runs the sample input through the sandbox and validates', async () => {
  await writeFile(path.join(dir, 'process_phone_number.js'), NORMAL_PHONE_HOOK);
  const r = await cli(['test', 'process_phone_number']);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/^\{\n {2}"data": \{\n {4}"phone": "89161234567"\n {2}\}\n\}\nvalidation: ok, [\d.]+ ms\n$/);
});

test('hook test --input - reads stdin; a bare params object is accepted', async () => {
  await writeFile(path.join(dir, 'process_phone_number.js'), NORMAL_PHONE_HOOK);
  const r = await cli(['test', 'process_phone_number', '--input', '-'], '{"phone": "+74951234567"}');
  expect(r.code).toBe(0);
  expect(JSON.parse(r.out.slice(0, r.out.lastIndexOf('validation')))).toEqual({ data: { phone: '84951234567' } });
});

test('hook test --input FILE; a failing hook exits 1 with the reason', async () => {
  await writeFile(path.join(dir, 'process_phone_number.js'), 'module.exports = () => ({ data: { phone: 7 } });');
  const input = path.join(dir, 'input.json');
  await writeFile(input, JSON.stringify({ params: { phone: '89161234567' } }));
  const r = await cli(['test', 'process_phone_number', '--input', input]);
  expect(r.code).toBe(1);
  expect(r.out).toMatch(/^error: data\.phone must be string; [\d.]+ ms\n$/);
  expect(r.err).toMatch(/E_HOOK process_phone_number \(.*\): data\.phone must be string/);
});

test('hook test reports cancel, a missing hook and input that breaks the contract', async () => {
  await writeFile(path.join(dir, 'process_phone_number.js'), 'module.exports = () => ({ data: [] });');
  expect((await cli(['test', 'process_phone_number'])).out).toMatch(/^cancelled by customization \(empty data\)/);
  expect(await cli(['test', 'need_registration'])).toMatchObject({ code: 1, err: `no need_registration file in ${dir}\n` });
  const bad = await cli(['test', 'process_phone_number', '--input', '-'], '{"params": {"phone": 1}}');
  expect(bad).toMatchObject({ code: 2, err: 'the input does not match the process_phone_number contract: params.phone must be string\n' });
  expect((await cli(['test', 'no_such_hook'])).code).toBe(2);
});
