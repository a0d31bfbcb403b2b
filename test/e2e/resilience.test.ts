/**
 * What a PBX admin relies on when things around the daemon fail: Bitrix24 down, overloaded or erroring, bad AMI
 * credentials — nothing is lost, nothing is sent twice, per-call order holds, and no secret reaches a log line.
 */
import { afterEach, expect, test } from '@jest/globals';
import { waitFor } from '../ops/support.ts';
import { AMI_SECRET, startHarness, type Harness } from '../support/e2e.ts';

let h: Harness | undefined;
afterEach(async () => { await h?.stop(); h = undefined; });

const QUEUE_ANSWERED = [
  'register #1 type=2 user=2 phone=+79169876543 line=74951234569 crm_create=1', 'show #1 users=2,3,4', 'hide #1 users=2,3',
  'finish #1 user=4 status=200 duration=6', 'attachRecord #1 1795324220.150.wav',
];

test('Bitrix24 down while calls happen, then back: every request delivered once, in order', async () => {
  h = await startHarness({ trace: 'inbound-queue-answered', startDaemon: false });
  await h.bitrix.setDown(true);
  await h.daemon.start();
  const retried = new Promise((resolve) => h!.daemon.outbox.once('retry', resolve));
  await h.ami.done();
  await retried; // the register failed on a refused connection and is waiting to be retried
  expect(h.daemon.outbox.depth()).toBeGreaterThan(0);
  await h.bitrix.setDown(false);
  await h.settle();
  expect(h.compact()).toEqual(QUEUE_ANSWERED);
  expect(h.daemon.outbox.deadLetters()).toEqual([]);
});

test('5xx, QUERY_LIMIT_EXCEEDED and OPERATION_TIME_LIMIT are retried: same requests, same order', async () => {
  // The emulator's clock runs ~10 min behind so that the method block (operating_reset_at = now + 600 s) ends in 2 s.
  h = await startHarness({ trace: 'inbound-queue-answered', startDaemon: false, bitrixOptions: { now: () => Date.now() - 598_000 } });
  h.bitrix.failNext(1, '500', 'telephony.externalCall.register');
  h.bitrix.failNext(1, 'QUERY_LIMIT_EXCEEDED', 'telephony.externalCall.show');
  h.bitrix.failNext(1, 'OPERATION_TIME_LIMIT', 'telephony.externalCall.hide');
  await h.daemon.start();
  await h.settle();
  expect(h.compact()).toEqual(QUEUE_ANSWERED);
  const failed = h.bitrix.requests.filter((r) => r.httpStatus !== 200).map((r) => `${r.method} ${r.httpStatus}`);
  expect(failed).toEqual(['telephony.externalCall.register 500', 'telephony.externalCall.show 503', 'telephony.externalCall.hide 429']);
}, 30_000);

test('stopped while a blocked method waits for the rate limit: the daemon stops at once, nothing is dead-lettered, all goes out after the restart', async () => {
  // The emulator's clock runs 595 s behind: the block (operating_reset_at = now + 600 s) lasts 5 s.
  h = await startHarness({ trace: ['inbound-answered', 'inbound-no-answer'], speed: 20, startDaemon: false, bitrixOptions: { now: () => Date.now() - 595_000 } });
  h.bitrix.failNext(1, 'OPERATION_TIME_LIMIT', 'telephony.externalCall.register');
  await h.daemon.start();
  await h.ami.done();
  // The first call's register was refused; the second call's waits in the limiter for the block to end.
  await waitFor(() => h!.daemon.limiter.pending > 0, 5000, 'a request waiting in the limiter');
  await h.restart();
  expect(h.logLines.join('')).toMatch(/register interrupted by shutdown: sent again on the next start/);
  await h.settle();
  expect(h.daemon.outbox.deadLetters()).toEqual([]);
  const lines = h.compact();
  expect(lines.filter((l) => l.startsWith('register'))).toHaveLength(2);
  expect(lines.filter((l) => l.startsWith('finish'))).toHaveLength(2);
}, 30_000);

test('a permanent Bitrix24 error dead-letters the register with a clear reason, the rest of the call waits with it, and a retry replays it in order', async () => {
  h = await startHarness({ trace: 'inbound-answered', startDaemon: false });
  h.bitrix.failNext(1, { status: 400, error: 'ERROR_CORE', description: 'Unsupported phone number format' }, 'telephony.externalCall.register');
  await h.daemon.start();
  await h.settle();
  const dead = h.daemon.outbox.deadLetters();
  expect(dead.map((d) => d.kind)).toEqual(['register', 'show', 'finish', 'attachRecord']);
  expect(dead[0]!.error).toContain('Unsupported phone number format');
  expect(dead[2]!.error).toContain('registration r0 of 1795324160.126 was dead-lettered');
  expect(h.compact()).toEqual([]);
  expect(h.logLines.join('')).toMatch(/register.*Unsupported phone number format/);
  // The admin fixed the cause (here: the fault was one-off) and retries the dead letters: all of it, in order.
  expect(h.daemon.outbox.retryDead()).toBe(4);
  h.daemon.outbox.kick();
  await h.daemon.outbox.idle();
  expect(h.compact()).toEqual([
    'register #1 type=2 user=2 phone=+79161234567 line=74951234567 crm_create=1', 'show #1 users=2',
    'finish #1 user=2 status=200 duration=5', 'attachRecord #1 1795324160.126.wav',
  ]);
});

test('secrets never reach the log: AMI secret and webhook secret', async () => {
  h = await startHarness({ trace: 'inbound-answered' });
  await h.settle();
  const log = h.logLines.join('');
  expect(log).toContain('registered incoming call');
  expect(log).not.toContain(AMI_SECRET);
  expect(log).not.toContain(h.bitrix.webhookSecret);
});

test('wrong AMI secret: a clear E_AMI_AUTH line without the secret, and the daemon keeps running', async () => {
  h = await startHarness({ amiSecret: 'not-the-right-one' });
  const failed = new Promise<Error>((resolve) => h!.daemon.amiClients[0]!.once('error', resolve));
  const err = await failed;
  expect(err.message).toMatch(/login|authentication/i);
  expect(err.message).not.toContain('not-the-right-one');
  expect(h.logLines.join('')).toMatch(/E_AMI_AUTH|Authentication failed/);
  expect(h.logLines.join('')).not.toContain('not-the-right-one');
});

test('a backlog of 100 calls drains in batches under Bitrix24\'s own limit (2 req/s, burst 50): nothing lost, nothing twice, order kept', async () => {
  // Both sides at Bitrix24's standard-plan limit: the daemon's own bucket keeps it from ever being refused.
  h = await startHarness({ startDaemon: false, bitrixOptions: { rateLimit: { ratePerSec: 2, burst: 50 } }, rateLimit: { perSecond: 2, burst: 50 } });
  await h.bitrix.setDown(true);
  await h.daemon.start();
  // 20 copies of the five-call concurrent trace, with distinct identities: 100 calls while Bitrix24 is down
  const { join } = await import('node:path');
  const { FIXTURES } = await import('../support/e2e.ts');
  h.ami.play(join(FIXTURES, 'concurrent-mix.jsonl'), { copies: 20, actionWaitMs: 150 });
  await Promise.all(h.daemon.amiClients.map((c) => c.ready()));
  await h.ami.done();
  await h.daemon.amiClients[0]!.action('Ping');
  await new Promise((r) => setImmediate(r));
  for (const s of h.daemon.sessions) s.flush();
  expect(h.daemon.outbox.depth()).toBeGreaterThan(100);
  await h.bitrix.setDown(false);
  await h.daemon.outbox.idle();

  const calls = [...h.bitrix.calls.values()];
  expect(calls).toHaveLength(100);
  expect(calls.every((c) => c.finished)).toBe(true);
  const finishes = h.bitrix.requests.filter((r) => /finish$/i.test(r.method) && r.httpStatus === 200);
  expect(finishes).toHaveLength(100);
  expect(new Set(finishes.map((r) => r.params.CALL_ID)).size).toBe(100);
  // Per call: register, then its cards, finish, record — never out of order.
  for (const call of calls) {
    const mine = h.bitrix.requests.filter((r) => r.httpStatus === 200 && (r.params.CALL_ID === call.callId || (/register$/i.test(r.method) && r.params.EXTERNAL_CALL_ID === call.externalCallId)))
      .map((r) => r.method.replace(/^telephony\.externalCall\./i, ''));
    expect(mine[0]).toMatch(/register/i);
    expect(mine.indexOf('finish')).toBeGreaterThan(0);
    if (mine.includes('attachRecord')) expect(mine.indexOf('attachRecord')).toBeGreaterThan(mine.indexOf('finish'));
  }
  // Recordings carry their bytes and go on their own; everything else rides in batches of many commands.
  const single = h.bitrix.requests.filter((r) => !r.viaBatch && !/^(user\.get|batch|telephony\.externalcall\.attachrecord)$/i.test(r.method));
  const batches = h.bitrix.requests.filter((r) => r.method === 'batch').length;
  const commands = h.bitrix.requests.filter((r) => r.viaBatch).length;
  // How many go alone depends on timing (a request queued while nothing else is): under CI load a few more do.
  expect(commands / (commands + single.length)).toBeGreaterThan(0.75);
  expect(batches + single.length).toBeLessThan((commands + single.length) / 3);
  expect(h.bitrix.requests.filter((r) => r.httpStatus === 503)).toEqual([]); // the client-side bucket kept under the limit
}, 60_000);
