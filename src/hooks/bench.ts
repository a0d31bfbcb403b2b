/**
 * Micro-benchmark of the hook path for `npm run bench` (goal: warm p50 ≤ 0.3 ms, p99 ≤ 2 ms per call).
 * Measures whole `HookRunner.run` calls: input validation, the round trip to the sandbox process, output
 * validation and merge. Timing is only reported here, never asserted in tests.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { silentLogger } from '../log/logger.ts';
import { sampleInput } from './contract.ts';
import { HookRunner } from './runner.ts';

export interface HookBench {
  /** One warm process_phone_number call, median and 99th percentile. */
  warmP50Ms: number;
  warmP99Ms: number;
  /** A fresh sandbox process: start-up, first compile and first call (median of 5). */
  childRestartMs: number;
  /** need_registration → process_phone_number → process_search_params → process_registration_params →
   *  process_final_params, as one registration and its finish run them (median). */
  chainOfFiveMs: number;
}

const SCRIPTS: Record<string, string> = {
  'process_phone_number.js': `module.exports = (i) => ({ data: { phone: i.params.phone.replace(/^8/, '+7') }, state: 'success' });`,
  'need_registration.js': `module.exports = (i) => ({ data: { need_registration: i.params.trunk !== 'fax' }, state: 'success' });`,
  'process_search_params.js': `module.exports = (i) => ({ data: { CRM_SOURCE: 'CALL' }, state: 'success' });`,
  'process_registration_params.js': `module.exports = (i) => ({ data: { SHOW: 1 }, state: 'success' });`,
  'process_final_params.js': `module.exports = (i) => ({ data: { ADD_TO_CHAT: i.params.conversation.was_answered ? 0 : 1 }, state: 'success' });`,
};

export async function benchHooks(opts: { calls?: number } = {}): Promise<HookBench> {
  const calls = opts.calls ?? 10_000;
  const dir = await mkdtemp(path.join(tmpdir(), 'hook-bench-'));
  try {
    for (const [name, text] of Object.entries(SCRIPTS)) await writeFile(path.join(dir, name), text);
    const runner = new HookRunner({ dir, log: silentLogger(), watch: false });
    await runner.start();
    try {
      const phone = { phone: '89161234567' };
      for (let i = 0; i < 2000; i++) await runner.run('process_phone_number', phone);
      const single: number[] = [];
      for (let i = 0; i < calls; i++) {
        const t = performance.now();
        await runner.run('process_phone_number', phone);
        single.push(performance.now() - t);
      }

      const need = sampleInput('need_registration').params;
      const search = sampleInput('process_search_params').params;
      const register = sampleInput('process_registration_params').params;
      const final = sampleInput('process_final_params').params;
      const chain: number[] = [];
      for (let i = 0; i < Math.max(100, calls / 10); i++) {
        const t = performance.now();
        await runner.run('need_registration', need);
        await runner.run('process_phone_number', phone);
        await runner.run('process_search_params', search);
        await runner.run('process_registration_params', register);
        await runner.run('process_final_params', final);
        chain.push(performance.now() - t);
      }

      const restarts: number[] = [];
      for (let i = 0; i < 5; i++) {
        const fresh = new HookRunner({ dir, log: silentLogger(), watch: false });
        const t = performance.now();
        await fresh.start();
        await fresh.run('process_phone_number', phone);
        restarts.push(performance.now() - t);
        await fresh.stop();
      }
      return {
        warmP50Ms: quantile(single, 0.5),
        warmP99Ms: quantile(single, 0.99),
        childRestartMs: quantile(restarts, 0.5),
        chainOfFiveMs: quantile(chain, 0.5),
      };
    } finally {
      await runner.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const v = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0;
  return Math.round(v * 1000) / 1000;
}
