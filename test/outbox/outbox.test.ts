import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/log/logger.ts';
import { openStore, type Store } from '../../src/store/db.ts';
import { Outbox, type OpHandler, type OutboxOptions, type PriorOutcome, type StoredOp } from '../../src/outbox/outbox.ts';

let dir: string;
let file: string;
const open: Array<{ store: Store; outbox?: Outbox }> = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'b24-outbox-'));
  file = path.join(dir, 'state.sqlite');
});
afterEach(async () => {
  for (const { store, outbox } of open.splice(0)) {
    await outbox?.stop();
    store.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A store and an outbox over `file`, closed after the test. Tiny backoffs keep retries fast. */
function setup(handler: OpHandler, options: Partial<OutboxOptions> = {}): { store: Store; outbox: Outbox } {
  const store = openStore(file, options.now ? { now: options.now } : {});
  const outbox = new Outbox(store, { handler, log: silentLogger(), backoff: { minMs: 1, maxMs: 2 }, ...options });
  open.push({ store, outbox });
  return { store, outbox };
}

const op = (group: string, name: string, payload: unknown = { name }) => ({ idemKey: `${group}:${name}`, group, kind: name, payload });

function retryable(message: string, retryAfterMs?: number): Error {
  return Object.assign(new Error(message), { retryable: true }, retryAfterMs === undefined ? {} : { retryAfterMs });
}

/** Lets already-queued setImmediate callbacks (the outbox's drain) run first. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** A promise with its resolve exposed. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('Outbox', () => {
  test('runs each group strictly in order, different groups concurrently up to the limit', async () => {
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const { outbox } = setup(async (o) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      log.push(`start ${o.group}#${o.seq}`);
      await turn();
      await turn();
      log.push(`end ${o.group}#${o.seq}`);
      running--;
      return o.seq;
    }, { concurrency: 2 });
    for (const g of ['a', 'b', 'c']) outbox.enqueue([1, 2, 3, 4].map((n) => op(g, `op${n}`)));
    outbox.start();
    await outbox.idle();

    expect(maxRunning).toBe(2);
    for (const g of ['a', 'b', 'c']) {
      expect(log.filter((line) => line.includes(` ${g}#`))).toEqual(
        [1, 2, 3, 4].flatMap((n) => [`start ${g}#${n}`, `end ${g}#${n}`]));
    }
    expect(outbox.depth()).toBe(0);
  });

  test('a retryable failure is retried with backoff; the group waits, other groups do not', async () => {
    const calls: string[] = [];
    let failures = 2;
    const { outbox } = setup(async (o) => {
      calls.push(`${o.idemKey}@${o.attempts}`);
      if (o.idemKey === 'a:register' && failures-- > 0) throw retryable('Bitrix24 is down');
      return 'ok';
    });
    const retries: Array<[string, string]> = [];
    outbox.on('retry', (o, err) => retries.push([o.idemKey, err.message]));
    outbox.enqueue([op('a', 'register'), op('a', 'finish'), op('b', 'register')]);
    outbox.start();
    await outbox.idle();

    expect(retries).toEqual([['a:register', 'Bitrix24 is down'], ['a:register', 'Bitrix24 is down']]);
    const aCalls = calls.filter((c) => c.startsWith('a:'));
    expect(aCalls).toEqual(['a:register@1', 'a:register@2', 'a:register@3', 'a:finish@1']);
    expect(calls.indexOf('b:register@1')).toBeLessThan(calls.indexOf('a:register@3'));
  });

  test('retryAfterMs and the backoff are persisted: after a restart the op waits for its time', async () => {
    let now = 1_000_000;
    const clock = () => now;
    const first = setup(async () => {
      throw retryable('QUERY_LIMIT_EXCEEDED', 5000);
    }, { now: clock });
    first.outbox.enqueue([op('a', 'register')]);
    first.outbox.start();
    const [retried, , delay] = await once(first.outbox, 'retry') as [StoredOp, Error, number];
    expect(retried.attempts).toBe(1);
    expect(delay).toBe(5000);
    await first.outbox.stop();
    first.store.close();

    const delivered: StoredOp[] = [];
    const second = setup(async (o) => {
      delivered.push(o);
      return 'ok';
    }, { now: clock });
    second.outbox.start();
    await turn();
    expect(delivered).toEqual([]);
    expect(second.outbox.depth()).toBe(1);
    now += 4999;
    second.outbox.kick();
    await turn();
    expect(delivered).toEqual([]);
    now += 1;
    second.outbox.kick();
    await second.outbox.idle();
    expect(delivered.map((o) => [o.idemKey, o.attempts])).toEqual([['a:register', 2]]);
  });

  test('the exponential backoff stays within its jittered bounds and its cap', async () => {
    const now = 5_000_000;
    const delays: number[] = [];
    const { store, outbox } = setup(async () => {
      throw retryable('down');
    }, { now: () => now, backoff: { minMs: 1000, maxMs: 4000 } });
    outbox.on('retry', (_o, _e, d) => {
      delays.push(d);
      if (delays.length < 5) {
        // Make the op due again at once (as if the time had passed) to collect the next delay.
        store.db.prepare('UPDATE outbox SET next_attempt_at = 0').run();
        outbox.kick();
      }
    });
    outbox.enqueue([op('a', 'x')]);
    outbox.start();
    while (delays.length < 5) await once(outbox, 'retry');
    const bounds = [1000, 2000, 4000, 4000, 4000];
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(bounds[i]! / 2);
      expect(d).toBeLessThanOrEqual(bounds[i]!);
    });
  });

  test('a permanent failure dead-letters the op and the group goes on, its next op seeing the outcome', async () => {
    const seen: Array<[string, Array<[string, PriorOutcome]>]> = [];
    const { outbox } = setup(async (o, prior) => {
      seen.push([o.idemKey, [...prior]]);
      if (o.kind === 'show') throw new Error('CALL_ID not found https://x.bitrix24.ru/rest/1/supersecret/telephony');
      return { step: o.kind };
    });
    const dead: Array<{ idemKey: string; error: string }> = [];
    outbox.on('dead', (d) => dead.push({ idemKey: d.idemKey, error: d.error }));
    outbox.enqueue([op('c', 'register'), op('c', 'show'), op('c', 'finish')]);
    outbox.start();
    await outbox.idle();

    const error = 'CALL_ID not found https://x.bitrix24.ru/rest/1/***/telephony';
    expect(dead).toEqual([{ idemKey: 'c:show', error }]);
    expect(seen).toEqual([
      ['c:register', []],
      ['c:show', [['c:register', { status: 'done', result: { step: 'register' } }]]],
      ['c:finish', [
        ['c:register', { status: 'done', result: { step: 'register' } }],
        ['c:show', { status: 'dead', result: undefined, error }],
      ]],
    ]);
    expect(outbox.deadLetters()).toEqual([expect.objectContaining({ idemKey: 'c:show', group: 'c', seq: 2, kind: 'show', attempts: 1, error })]);
  });

  test('retryable errors dead-letter after maxAttempts when a limit is set', async () => {
    const { outbox } = setup(async () => {
      throw retryable('still down');
    }, { maxAttempts: 3 });
    outbox.enqueue([op('a', 'x')]);
    outbox.start();
    const [d] = await once(outbox, 'dead') as [{ attempts: number; error: string }];
    expect(d.attempts).toBe(3);
    expect(d.error).toBe('still down (gave up after 3 attempts)');
    await outbox.idle();
  });

  test('dead letters can be retried (one or all) and dropped', async () => {
    let failing = true;
    const delivered: string[] = [];
    const { outbox } = setup(async (o) => {
      if (failing) throw new Error(`rejected ${o.idemKey}`);
      delivered.push(`${o.idemKey}@${o.attempts}`);
      return null;
    });
    outbox.enqueue([op('a', 'x'), op('b', 'x'), op('c', 'x')]);
    outbox.start();
    await outbox.idle();
    const ids = outbox.deadLetters().map((d) => d.id);
    expect(ids).toHaveLength(3);

    failing = false;
    expect(outbox.retryDead(ids[0])).toBe(1);
    await outbox.idle();
    expect(delivered).toEqual(['a:x@1']);
    expect(outbox.dropDead(ids[1])).toBe(1);
    expect(outbox.deadLetters().map((d) => d.idemKey)).toEqual(['c:x']);
    expect(outbox.retryDead()).toBe(1);
    await outbox.idle();
    expect(delivered).toEqual(['a:x@1', 'c:x@1']);
    expect(outbox.deadLetters()).toEqual([]);
    // The dropped op's key is free again.
    expect(outbox.enqueue([op('b', 'x')])).toBe(1);
    await outbox.idle();
    expect(outbox.dropDead()).toBe(0);
  });

  test('enqueue is idempotent by idemKey, also across a reopen of the database', async () => {
    const delivered: string[] = [];
    const handler: OpHandler = async (o) => {
      delivered.push(o.idemKey);
    };
    const first = setup(handler);
    expect(first.outbox.enqueue([op('a', 'register'), op('a', 'register')])).toBe(1);
    expect(first.outbox.enqueue([op('a', 'register'), op('a', 'finish')])).toBe(1);
    first.outbox.start();
    await first.outbox.idle();
    await first.outbox.stop();
    first.store.close();

    const second = setup(handler);
    expect(second.outbox.enqueue([op('a', 'register'), op('a', 'finish')])).toBe(0);
    second.outbox.start();
    await second.outbox.idle();
    expect(delivered).toEqual(['a:register', 'a:finish']);
  });

  test('an op enqueued with the call state is delivered once after a crash before delivery', async () => {
    const first = setup(async () => {
      throw new Error('never called');
    });
    first.store.transaction(() => {
      first.store.saveCall('main', 'c1', { state: 'ringing' });
      first.outbox.enqueue([op('c1', 'register')]);
    });
    first.store.close(); // "crash": never started

    const delivered: StoredOp[] = [];
    const second = setup(async (o) => {
      delivered.push(o);
      return 'ok';
    });
    expect(second.store.loadActiveCalls('main')).toEqual([expect.objectContaining({ callKey: 'c1' })]);
    second.outbox.start();
    await second.outbox.idle();
    expect(delivered.map((o) => [o.idemKey, o.attempts, o.payload])).toEqual([['c1:register', 1, { name: 'register' }]]);
  });

  test('a rolled-back transaction queues nothing', async () => {
    const { store, outbox } = setup(async () => undefined);
    expect(() => store.transaction(() => {
      store.saveCall('main', 'c1', {});
      outbox.enqueue([op('c1', 'register')]);
      throw new Error('state machine failed');
    })).toThrow('state machine failed');
    expect(outbox.depth()).toBe(0);
    expect(store.loadActiveCalls('main')).toEqual([]);
  });

  test('an op in flight when the process died is delivered again after restart', async () => {
    const started = deferred<StoredOp>();
    const first = setup((o) => {
      started.resolve(o);
      return new Promise(() => {}); // the process "dies" mid-request
    });
    first.outbox.enqueue([op('c1', 'register'), op('c1', 'finish')]);
    first.outbox.start();
    expect((await started.promise).attempts).toBe(1);
    open.splice(open.indexOf(first), 1);
    first.store.close();

    const delivered: Array<[string, number]> = [];
    const second = setup(async (o) => {
      delivered.push([o.idemKey, o.attempts]);
      return 'ok';
    });
    second.outbox.start();
    await second.outbox.idle();
    expect(delivered).toEqual([['c1:register', 2], ['c1:finish', 1]]);
  });

  test('the handler sees the results of the earlier ops of its group, across a restart', async () => {
    const first = setup(async (o) => {
      if (o.kind === 'register') return { callId: 'externalCall.abc.1' };
      throw retryable('later');
    }, { backoff: { minMs: 60_000, maxMs: 60_000 } });
    first.outbox.enqueue([op('c1', 'register'), op('c1', 'finish'), op('c2', 'register')]);
    first.outbox.start();
    await once(first.outbox, 'retry');
    await first.outbox.stop();
    first.store.close();

    const finishSaw: unknown[] = [];
    const second = setup(async (o, prior) => {
      if (o.kind === 'finish') finishSaw.push((prior.get('c1:register')?.result as { callId: string }).callId, prior.size);
      return o.kind === 'register' ? { callId: `id-${o.group}` } : 'finished';
    });
    second.store.db.prepare('UPDATE outbox SET next_attempt_at = 0').run();
    second.outbox.start();
    await second.outbox.idle();
    expect(finishSaw).toEqual(['externalCall.abc.1', 1]);
  });

  test('pauseUntil holds every group until the time, without losing ops', async () => {
    let now = 1_000;
    const delivered: string[] = [];
    const { outbox } = setup(async (o) => {
      delivered.push(o.idemKey);
    }, { now: () => now });
    outbox.start();
    outbox.pauseUntil(11_000);
    outbox.pauseUntil(5_000); // never shortens
    outbox.enqueue([op('a', 'x'), op('b', 'x')]);
    await turn();
    now = 10_999;
    outbox.kick();
    await turn();
    expect(delivered).toEqual([]);
    expect(outbox.oldestPendingAgeMs()).toBe(9_999);
    now = 11_000;
    outbox.kick();
    await outbox.idle();
    expect(delivered.sort()).toEqual(['a:x', 'b:x']);
    expect(outbox.oldestPendingAgeMs()).toBeUndefined();
  });

  test('prune deletes finished groups older than the age, keeping groups with pending or dead ops', async () => {
    let now = 0;
    const { outbox } = setup(async (o) => {
      if (o.group === 'dead') throw new Error('rejected');
      if (o.kind === 'finish') throw retryable('later');
    }, { now: () => now, backoff: { minMs: 1_000_000, maxMs: 1_000_000 } });
    outbox.enqueue([op('old', 'register'), op('dead', 'register'), op('open', 'register'), op('open', 'finish')]);
    outbox.start();
    await once(outbox, 'retry');
    now = 10_000;
    outbox.enqueue([op('recent', 'register')]);
    while (outbox.depth() > 1) await once(outbox, 'delivered');

    expect(outbox.prune(5_000)).toBe(1); // 'old' only: 'recent' is too young, 'open' pending, 'dead' dead
    expect(outbox.enqueue([op('old', 'register'), op('recent', 'register'), op('open', 'register')])).toBe(1);
  });

  test('stop waits for the handler in flight and records its outcome', async () => {
    const release = deferred();
    const started = deferred();
    const { outbox } = setup(async () => {
      started.resolve();
      await release.promise;
      return 'late';
    });
    const delivered: unknown[] = [];
    outbox.on('delivered', (_o, result) => delivered.push(result));
    outbox.enqueue([op('a', 'x'), op('a', 'y')]);
    outbox.start();
    await started.promise;
    const stopped = outbox.stop();
    release.resolve();
    await stopped;
    expect(delivered).toEqual(['late']);
    expect(outbox.depth()).toBe(1); // 'a:y' waits for the next start
  });

  test('merge folds following pending ops of the group into the one being sent, durably', async () => {
    const sent: unknown[] = [];
    const mergeable = (payload: unknown) => (payload as { kind: string }).kind === 'card';
    const { outbox, store } = setup(async (o) => { sent.push(o.payload); return 'ok'; }, {
      merge: (head, next) => (mergeable(head.payload) && mergeable(next.payload)
        ? { kind: 'card', users: [...(head.payload as { users: number[] }).users, ...(next.payload as { users: number[] }).users] }
        : undefined),
    });
    outbox.enqueue([
      op('call', 'register', { kind: 'register' }),
      op('call', 'show1', { kind: 'card', users: [1] }),
      op('call', 'show2', { kind: 'card', users: [2] }),
      op('call', 'show3', { kind: 'card', users: [3] }),
      op('call', 'finish', { kind: 'finish' }),
      op('other', 'show', { kind: 'card', users: [9] }),
    ]);
    outbox.start();
    await outbox.idle();
    expect(sent.filter((p) => (p as { users?: number[] }).users?.includes(1))).toEqual([{ kind: 'card', users: [1, 2, 3] }]);
    expect(sent).toHaveLength(4); // register, merged card, finish, the other group's card (not merged across groups)
    const rows = store.db.prepare(`SELECT idem_key, status, result_json FROM outbox WHERE grp = 'call' ORDER BY seq`).all() as Array<{ idem_key: string; status: string; result_json: string }>;
    expect(rows.map((r) => [r.idem_key, r.status])).toEqual([
      ['call:register', 'done'], ['call:show1', 'done'], ['call:show2', 'done'], ['call:show3', 'done'], ['call:finish', 'done'],
    ]);
    expect(JSON.parse(rows[2]!.result_json)).toEqual({ mergedInto: 'call:show1' });
  });

  test('followUps: ops a delivery triggers are queued with it (same transaction) and run after it in order', async () => {
    const sent: string[] = [];
    const { outbox, store } = setup(async (o) => { sent.push(o.kind); return { ok: o.kind }; }, {
      followUps: (o, result) => (o.kind === 'finish' ? [{ idemKey: `${o.idemKey}:bizproc`, group: o.group, kind: 'bizproc', payload: { after: result } }] : []),
    });
    outbox.enqueue([op('call', 'register'), op('call', 'finish'), op('call', 'attachRecord')]);
    outbox.start();
    await outbox.idle();
    expect(sent).toEqual(['register', 'finish', 'attachRecord', 'bizproc']);
    const row = store.db.prepare(`SELECT payload_json FROM outbox WHERE kind = 'bizproc'`).get() as { payload_json: string };
    expect(JSON.parse(row.payload_json)).toEqual({ after: { ok: 'finish' } });
  });
});
