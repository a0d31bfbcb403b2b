import { afterEach, describe, expect, test } from '@jest/globals';
import { LeakyBucket, type TimerApi } from '../../src/bitrix/limiter.ts';
import { rejectionOf, startRig, type Rig } from './setup.ts';

/** A manual clock whose timers fire when it is advanced. */
function manualTime() {
  let now = 0;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const api: TimerApi = {
    setTimeout(fn, ms) {
      const id = ++seq;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
  };
  return {
    now: () => now,
    timers: api,
    scheduled: () => timers.size,
    async advance(ms: number) {
      const target = now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= target).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
        await Promise.resolve();
      }
      now = target;
      await new Promise((r) => setImmediate(r));
    },
  };
}

function track(p: Promise<void>) {
  const state = { done: false, failed: undefined as unknown };
  p.then(() => (state.done = true), (e: unknown) => (state.failed = e));
  return state;
}

describe('LeakyBucket', () => {
  test('a burst passes at once, then one request per 1/rate seconds, in FIFO order', async () => {
    const t = manualTime();
    const bucket = new LeakyBucket({ ratePerSec: 2, burst: 5, now: t.now, timers: t.timers });
    const order: number[] = [];
    const all = Array.from({ length: 8 }, (_, i) => bucket.take().then(() => order.push(i)));
    await t.advance(0);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    await t.advance(499);
    expect(order).toHaveLength(5);
    await t.advance(1);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
    await t.advance(1000);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    await Promise.all(all);
    expect(t.scheduled()).toBe(0); // no timer left behind when idle
  });

  test('a request in flight holds its slot and starts draining only when its response is back', async () => {
    const t = manualTime();
    const bucket = new LeakyBucket({ ratePerSec: 10, burst: 2, now: t.now, timers: t.timers });
    let answerFirst!: () => void;
    const first = bucket.run('a', () => new Promise<void>((r) => (answerFirst = r)));
    const second = bucket.run('b', () => new Promise<void>(() => undefined));
    const third = track(bucket.take('c'));
    await t.advance(5000); // both in flight fill the bucket however long they take
    expect(third.done).toBe(false);
    expect(t.scheduled()).toBe(0); // nothing to wait for but the response
    answerFirst();
    await first;
    await t.advance(99);
    expect(third.done).toBe(false);
    await t.advance(1);
    expect(third.done).toBe(true);
    void second;
  });

  test('penalize() stops everything for the given time and treats the bucket as full', async () => {
    const t = manualTime();
    const bucket = new LeakyBucket({ ratePerSec: 10, burst: 50, now: t.now, timers: t.timers });
    bucket.penalize(1000);
    const a = track(bucket.take());
    await t.advance(999);
    expect(a.done).toBe(false);
    await t.advance(1);
    // Full bucket (49 usable slots) has drained 10 slots during the second: the request goes through.
    expect(a.done).toBe(true);
  });

  test('pauseMethod() holds back only that method; others keep their FIFO turn', async () => {
    const t = manualTime();
    const bucket = new LeakyBucket({ ratePerSec: 100, burst: 100, now: t.now, timers: t.timers });
    bucket.pauseMethod('telephony.externalCall.finish', 60_000);
    const fin = track(bucket.take('telephony.externalCall.finish'));
    const reg = track(bucket.take('telephony.externalCall.register'));
    await t.advance(0);
    expect(reg.done).toBe(true);
    expect(fin.done).toBe(false);
    await t.advance(60_000);
    expect(fin.done).toBe(true);
  });

  test('close() rejects the waiters and clears the timer', async () => {
    const t = manualTime();
    const bucket = new LeakyBucket({ ratePerSec: 1, burst: 1, now: t.now, timers: t.timers });
    await bucket.take();
    const waiting = bucket.take();
    expect(t.scheduled()).toBe(1);
    bucket.close();
    expect((await rejectionOf(waiting)).message).toBe('LeakyBucket is closed');
    expect(t.scheduled()).toBe(0);
    expect((await rejectionOf(bucket.take())).message).toBe('LeakyBucket is closed');
  });
});

describe('LeakyBucket against the emulated portal limit', () => {
  let rig: Rig;
  afterEach(async () => {
    await rig.close();
  });

  test('120 concurrent calls within the portal bucket (50/s, burst 10) get zero 503s', async () => {
    const limit = { ratePerSec: 50, burst: 10 };
    rig = await startRig({ rateLimit: limit }, { limiter: new LeakyBucket(limit) });
    const started = Date.now();
    await Promise.all(Array.from({ length: 120 }, () => rig.client.call('profile')));
    expect(rig.emu.requests).toHaveLength(120);
    expect(rig.emu.requests.filter((r) => r.httpStatus !== 200)).toEqual([]);
    // 9 usable slots at once, the other 111 at 50/s: at least ~2.2 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
  });

  test('without the client limiter the same burst trips QUERY_LIMIT_EXCEEDED (the emulator enforces the limit)', async () => {
    const limit = { ratePerSec: 50, burst: 10 };
    rig = await startRig({ rateLimit: limit });
    const results = await Promise.allSettled(Array.from({ length: 40 }, () => rig.client.call('profile')));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({ kind: 'rate-limit', httpStatus: 503, bitrixCode: 'QUERY_LIMIT_EXCEEDED' });
  });
});
