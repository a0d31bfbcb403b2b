/**
 * Hostile scripts, each in its own test against real sandbox processes. Whatever the script does, run() resolves
 * with an error outcome naming what happened, one E_HOOK line is logged, and the next normal call still works.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { sampleInput } from '../../src/hooks/contract.ts';
import { harness, messages, NORMAL_PHONE_HOOK, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const PATH_INPUT = sampleInput('process_record_file_path').params;
const SHOWN_ERROR = /^E_HOOK process_record_file_path \(.*process_record_file_path\.js\): .*; the call goes on with unmodified params$/;

/** Runs the hostile record-path hook, then the normal phone hook in the same pool. */
async function attack(source: string) {
  h = await harness({ 'process_phone_number.js': NORMAL_PHONE_HOOK, 'process_record_file_path.js': source });
  const outcome = await h.runner.run('process_record_file_path', PATH_INPUT, { callId: '1795324160.126' });
  const after = await h.runner.run('process_phone_number', { phone: '+79161234567' }, { callId: '1795324160.126' });
  const errors = h.lines.filter((l) => l.level === 'error');
  const restarts = messages(h.lines, 'warn').filter((m) => /^sandbox process \d+ ended: /.test(m));
  return { outcome, after, errors, restarts };
}

function expectRecovered(r: Awaited<ReturnType<typeof attack>>) {
  expect(r.after).toMatchObject({ status: 'ok', data: { phone: '89161234567' } });
  expect(r.errors).toHaveLength(1);
  expect(r.errors[0]!.message).toMatch(SHOWN_ERROR);
  expect(r.errors[0]).toMatchObject({ code: 'E_HOOK', hook: 'process_record_file_path', callId: '1795324160.126' });
}

describe('runaway code is stopped at the timeout', () => {
  test('while(true){} is killed by the watchdog', async () => {
    const r = await attack('module.exports = function () { while (true) {} };');
    expect(r.outcome).toMatchObject({ status: 'error', error: 'timed out after 300 ms (the sandbox process was killed)' });
    expect((r.outcome as { ms: number }).ms).toBeGreaterThanOrEqual(300);
    expect(r.restarts).toHaveLength(1);
    expectRecovered(r);
  });

  test('an async infinite loop (while(true) await null) is killed', async () => {
    const r = await attack('module.exports = async function () { while (true) await null; };');
    expect(r.outcome).toMatchObject({ status: 'error', error: 'timed out after 300 ms (the sandbox process was killed)' });
    expectRecovered(r);
  });

  test('a never-resolving promise fails at once: nothing in the sandbox could ever resolve it', async () => {
    const r = await attack('module.exports = function () { return new Promise(function () {}); };');
    expect(r.outcome).toMatchObject({ status: 'error' });
    expect(r.restarts).toHaveLength(0);
    expect((r.outcome as { error: string }).error).toMatch(/^the promise returned by the hook never settled/);
    expectRecovered(r);
  });

  test('top-level code that never ends is stopped while loading', async () => {
    const r = await attack('while (true) {}\nmodule.exports = function (i) { return { data: { path: i.params.path } }; };');
    expect(r.outcome).toMatchObject({ status: 'error', error: 'timed out after 300 ms while loading' });
    expectRecovered(r);
  });
});

describe('the pool', () => {
  test('a script that kills its sandbox on every call: restarts back off, and normal calls still get through', async () => {
    h = await harness({
      'process_phone_number.js': NORMAL_PHONE_HOOK,
      'process_record_file_path.js': 'module.exports = function () { const a = []; while (true) a.push(new Array(100000).fill(1.5)); };',
    });
    for (let i = 0; i < 3; i++) {
      expect(await h.runner.run('process_record_file_path', PATH_INPUT)).toMatchObject({ status: 'error' });
    }
    expect(await h.runner.run('process_phone_number', { phone: '+79161234567' })).toMatchObject({ status: 'ok', data: { phone: '89161234567' } });
    expect(messages(h.lines, 'warn').filter((m) => /^sandbox process \d+ ended: /.test(m))).toHaveLength(3);
  });

  test('with two sandbox processes, a runaway call does not hold up the others', async () => {
    h = await harness({
      'process_phone_number.js': NORMAL_PHONE_HOOK,
      'process_record_file_path.js': 'module.exports = function () { while (true) {} };',
    }, { poolSize: 2 });
    const runaway = h.runner.run('process_record_file_path', PATH_INPUT);
    const normal = await h.runner.run('process_phone_number', { phone: '+79161234567' });
    expect(normal).toMatchObject({ status: 'ok', data: { phone: '89161234567' } });
    expect((normal as { ms: number }).ms).toBeLessThan(300);
    expect(await runaway).toMatchObject({ status: 'error', error: 'timed out after 300 ms (the sandbox process was killed)' });
  });
});

describe('memory exhaustion ends only the sandbox process', () => {
  test('a growing array hits the 64 MB heap limit', async () => {
    const r = await attack('module.exports = function () { const a = []; while (true) a.push(new Array(100000).fill(1.5)); };');
    expect(r.outcome).toMatchObject({ status: 'error' });
    // Usually V8 gives up (child aborts); on a loaded box GC thrashing may outlast the watchdog instead.
    expect((r.outcome as { error: string }).error).toMatch(/^the sandbox process ran out of memory|^timed out after 300 ms/);
    expectRecovered(r);
  });

  test('a typed-array bomb is stopped by the address-space limit', async () => {
    const r = await attack('module.exports = function () { const a = []; while (true) a.push(new Float64Array(1 << 24)); };');
    expect(r.outcome).toMatchObject({ status: 'error' });
    // ulimit -v makes the allocation fail inside the script (a catchable RangeError) instead of eating the host's RAM.
    expect((r.outcome as { error: string }).error).toMatch(/^RangeError: Array buffer allocation failed \(.*process_record_file_path\.js:1:\d+\)$/);
    expectRecovered(r);
  });
});

describe('throws', () => {
  test('a synchronous throw is reported with its location', async () => {
    const r = await attack('module.exports = function () {\n  throw new TypeError("no path");\n};');
    const error = (r.outcome as { error: string }).error;
    expect(error).toMatch(/^TypeError: no path \(.*process_record_file_path\.js:2:\d+\)$/);
    expectRecovered(r);
  });

  test('an async rejection is reported', async () => {
    const r = await attack('module.exports = async function () { await null; throw new Error("later"); };');
    expect((r.outcome as { error: string }).error).toMatch(/^rejected: Error: later/);
    expectRecovered(r);
  });

  test('throwing a value that cannot be printed is still contained', async () => {
    const r = await attack('module.exports = async function () { const e = new Error("odd"); e.name = Symbol("s"); throw e; };');
    expect(r.outcome).toMatchObject({ status: 'error', error: 'rejected: Error: odd' });
    expectRecovered(r);
  });
});

describe('no way out of the context', () => {
  test('process, require, module globals and timers do not exist', async () => {
    const r = await attack(`module.exports = function () {
      const seen = [typeof process, typeof require, typeof globalThis.process, typeof setTimeout, typeof Buffer, typeof fetch];
      return { data: { path: seen.join(',') } };
    };`);
    expect(r.outcome).toMatchObject({ status: 'ok', data: { path: 'undefined,undefined,undefined,undefined,undefined,undefined' } });
    expect(r.after).toMatchObject({ status: 'ok', data: { phone: '89161234567' } });
  });

  test("this.constructor.constructor('return process')() is refused", async () => {
    const r = await attack(`module.exports = function () {
      return { data: { path: String(this.constructor.constructor('return process')()) } };
    };`);
    expect((r.outcome as { error: string }).error).toMatch(/^EvalError: Code generation from strings disallowed/);
    expectRecovered(r);
  });

  test('/etc/passwd cannot be read by any route', async () => {
    const r = await attack(`module.exports = async function () {
      const tried = [];
      const attempt = async (name, f) => { try { const v = await f(); tried.push(name + ':' + String(v).slice(0, 20)); } catch (e) { tried.push(name + ':blocked'); } };
      await attempt('import', () => import('node:fs').then((fs) => fs.readFileSync('/etc/passwd', 'utf8')));
      await attempt('require', () => require('fs').readFileSync('/etc/passwd', 'utf8'));
      await attempt('ctor', () => (function () {}).constructor('return process.binding("fs")')());
      await attempt('asyncCtor', () => (async function () {}).constructor('return 1')());
      await attempt('eval', () => eval('1+1'));
      return { data: { path: tried.join(' ') } };
    };`);
    expect(r.outcome).toMatchObject({
      status: 'ok',
      data: { path: 'import:blocked require:blocked ctor:blocked asyncCtor:blocked eval:blocked' },
    });
    expect(r.after).toMatchObject({ status: 'ok', data: { phone: '89161234567' } });
  });

  test('environment variables are out of reach (the daemon has them, the sandbox has none)', async () => {
    process.env['HOOKS_TEST_SECRET'] = 's3cr3t';
    try {
      const r = await attack(`module.exports = function () {
        let env = 'none';
        try { env = JSON.stringify(process.env); } catch (e) {}
        try { env = (function () {}).constructor('return JSON.stringify(process.env)')(); } catch (e) {}
        return { data: { path: env } };
      };`);
      expect(r.outcome).toMatchObject({ status: 'ok', data: { path: 'none' } });
      expect(r.after).toMatchObject({ status: 'ok', data: { phone: '89161234567' } });
    } finally {
      delete process.env['HOOKS_TEST_SECRET'];
    }
  });
});

describe('bad answers', () => {
  test('the wrong shape names hook, file and field', async () => {
    const r = await attack('module.exports = function () { return { data: { path: 42 }, state: "success" }; };');
    expect(r.outcome).toMatchObject({ status: 'error', error: 'data.path must be string' });
    expect(r.errors[0]!.message).toMatch(/^E_HOOK process_record_file_path \(.*process_record_file_path\.js\): data\.path must be string;/);
    expectRecovered(r);
  });

  test('returning nothing is an error, not a cancel', async () => {
    const r = await attack('module.exports = function () {};');
    expect((r.outcome as { error: string }).error).toMatch(/^the hook returned nothing/);
    expectRecovered(r);
  });

  test('a file without an exported function', async () => {
    const r = await attack('const x = 1;');
    expect((r.outcome as { error: string }).error).toMatch(/^the script exports no function/);
    expectRecovered(r);
  });

  test('an output above the size cap', async () => {
    const r = await attack('module.exports = function () { return { data: { path: "x".repeat(300000) } }; };');
    expect(r.outcome).toMatchObject({ status: 'error', error: "the hook's output is larger than 262144 bytes" });
    expectRecovered(r);
  });

  test('a syntax error is logged with file:line and the hook stays inactive', async () => {
    h = await harness({ 'process_phone_number.js': 'module.exports = function (input) {\n  return { data: { phone: } };\n};\n' });
    const error = messages(h.lines, 'error').join('\n');
    expect(error).toMatch(/E_HOOK process_phone_number \(.*process_phone_number\.js\): cannot load: .*process_phone_number\.js:2: SyntaxError: Unexpected token '}'/);
    expect(h.runner.has('process_phone_number')).toBe(false);
    expect(h.runner.list()).toEqual([expect.objectContaining({ hook: 'process_phone_number', status: 'error', version: 0 })]);
    expect(await h.runner.run('process_phone_number', { phone: '+79161234567' })).toEqual({ status: 'absent' });
  });
});
