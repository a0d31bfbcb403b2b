/**
 * BatchingCaller against the Bitrix24 emulator: a method Bitrix24 blocked (OPERATION_TIME_LIMIT) is never
 * carried inside a batch past its block, and its waiting calls do not take the in-flight slots other methods
 * need.
 */
import { afterEach, expect, test } from '@jest/globals';
import { BatchingCaller } from '../../src/bitrix/batching-caller.ts';
import { startRig, type Rig } from './setup.ts';

let rig: Rig;
afterEach(async () => {
  await rig?.close();
});

test('a blocked method waits on its own; other methods still go out, batched, through the two in-flight slots', async () => {
  rig = await startRig();
  const caller = new BatchingCaller(rig.client, { maxInFlight: 2 });
  rig.emu.failNext(1, 'OPERATION_TIME_LIMIT', 'crm.duplicate.findbycomm');
  // The block arrives inside a batch (two calls at the same moment), as it would under load.
  const [blocked, ok] = await Promise.allSettled([
    caller.call('crm.duplicate.findbycomm', { type: 'PHONE', values: ['+79001234567'] }),
    caller.call('profile'),
  ]);
  expect(blocked).toMatchObject({ status: 'rejected', reason: { kind: 'operating-limit' } });
  expect(ok.status).toBe('fulfilled');
  expect(rig.client.isPaused('crm.duplicate.findbycomm')).toBe(true);
  const sentBefore = rig.emu.requests.length;

  // Three calls of the blocked method (more than the in-flight cap), then other work: the other work is done.
  const waiting = [1, 2, 3].map((i) => caller.call('crm.duplicate.findbycomm', { type: 'PHONE', values: [`+7900000000${i}`] }));
  const settled = Promise.allSettled(waiting);
  const others = await Promise.all([caller.call('profile'), caller.call('user.get', { ID: 2 }), caller.call('profile')]);
  expect(others).toHaveLength(3);
  expect(rig.emu.requests.slice(sentBefore).map((r) => `${r.method}${r.viaBatch ? ' (in batch)' : ''}`))
    .toEqual(['batch', 'profile (in batch)', 'user.get (in batch)', 'profile (in batch)']);
  expect(rig.limiter.pending).toBe(3);

  // Shutdown lets the waiting calls go with an error instead of holding the process for the block's length.
  rig.limiter.close();
  expect((await settled).map((r) => r.status === 'rejected' && String(r.reason))).toEqual(Array(3).fill('Error: LeakyBucket is closed'));
});

test("a batch gets more time than one request (it runs up to 50 methods), never more than Bitrix24's own 60 s", async () => {
  rig = await startRig({}, { timeoutMs: 1000 });
  rig.emu.slowMs = 1500; // slower than one request may take, well within what a batch of 50 may
  const caller = new BatchingCaller(rig.client, { maxInFlight: 1 });
  rig.emu.failNext(1, 'slow', 'profile');
  await expect(caller.call('profile')).rejects.toMatchObject({ kind: 'network' });
  rig.emu.failNext(1, 'slow', 'batch'); // 50 calls made at once leave as one batch, which may take 3 s
  const results = await Promise.all(Array.from({ length: 50 }, () => caller.call('profile')));
  expect(results).toHaveLength(50);
  expect(rig.emu.requests.filter((r) => r.method === 'batch').map((r) => r.httpStatus)).toEqual([200]);
});
