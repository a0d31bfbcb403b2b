/**
 * `npm run bench`: performance figures, measured on the recorded traces, written to bench/results.json and
 * printed as a table. Figures are ratios and percentiles, never pass/fail: tests never time anything.
 *
 * 1. AMI events/s: framing + parsing alone, and framing + parsing + call-event mapping + the call machine,
 *    over every recorded trace replayed many times with distinct identities (goal: ≥ 50 % of framing alone,
 *    ≥ 100k events/s).
 * 2. Latency from the ringing event (DialBegin) to the register request leaving the daemon, through the whole
 *    integration path (state machine, SQLite transaction with the outbox, dispatcher), without hooks and with a
 *    chain of five hooks (goal p99 ≤ 5 ms / ≤ 10 ms).
 * 3. Customization hooks: warm call p50/p99, sandbox restart, a chain of five.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AmiParser } from '../src/ami/parser.ts';
import { toCallEvent } from '../src/ami/to-call-event.ts';
import { DryRunClient } from '../src/bitrix/dry-run.ts';
import { CallMachine } from '../src/calls/machine.ts';
import { benchHooks } from '../src/hooks/bench.ts';
import { HookRunner } from '../src/hooks/runner.ts';
import { Dispatcher, mergeCardOps, NO_HOOKS, type HookRunnerLike, type IntentOp } from '../src/integration/dispatcher.ts';
import { PbxSession } from '../src/integration/pbx-session.ts';
import { silentLogger } from '../src/log/logger.ts';
import { Outbox } from '../src/outbox/outbox.ts';
import { openStore } from '../src/store/db.ts';
import { rewriteIdentities } from '../test/fakes/ami-trace.ts';
import { BitrixEmulator } from '../test/fakes/bitrix-emulator.ts';
import { AmiSimulator } from '../test/fakes/ami-simulator.ts';
import type { CallEvent } from '../src/calls/events.ts';
import { parseConfig } from '../src/config/load.ts';
import { Daemon } from '../src/integration/daemon.ts';

const ROOT = join(import.meta.dirname, '..');
const FIXTURES = join(ROOT, 'test/fixtures/ami');
const LAB = { extensionPattern: '^\\d{2,5}$', trunks: ['provider'] };

function traceFrames(file: string): string[] {
  return readFileSync(join(FIXTURES, file), 'utf8').split('\n').slice(1).filter(Boolean)
    .map((l) => JSON.parse(l) as { dir: string; raw: string }).filter((r) => r.dir === 'in' && r.raw.includes('\r\n\r\n')).map((r) => r.raw);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));

/** 1. Throughput: one big stream of every trace, copied with distinct identities, read in 64 KiB chunks. */
function throughput(): Record<string, number> {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.jsonl') && !f.startsWith('actions-idle'));
  const base = files.flatMap(traceFrames);
  const copies = 40;
  const frames: string[] = [];
  for (let c = 0; c < copies; c++) for (const raw of base) frames.push(rewriteIdentities(raw, c));
  const stream = Buffer.from(frames.join(''), 'utf8');
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 65536) chunks.push(stream.subarray(i, i + 65536));

  const framingOnly = () => {
    const parser = new AmiParser();
    let n = 0;
    for (const chunk of chunks) n += parser.push(chunk).length;
    return n;
  };
  const fullPath = () => {
    const parser = new AmiParser();
    const machine = new CallMachine(LAB);
    let world = machine.initial();
    let n = 0;
    for (const chunk of chunks) {
      for (const msg of parser.push(chunk)) {
        n++;
        const event = toCallEvent(msg);
        if (event) world = machine.step(world, event).world;
      }
    }
    return n;
  };
  const time = (fn: () => number) => {
    fn(); // warm-up
    let best = Infinity;
    let count = 0;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      count = fn();
      best = Math.min(best, performance.now() - t0);
    }
    return { eventsPerSec: count / (best / 1000), count };
  };
  const raw = time(framingOnly);
  const full = time(fullPath);
  return {
    events: raw.count,
    framingEventsPerSec: Math.round(raw.eventsPerSec),
    fullPathEventsPerSec: Math.round(full.eventsPerSec),
    fullToFramingRatio: round(full.eventsPerSec / raw.eventsPerSec),
  };
}

/** 2. Ringing event → register request leaving, through the integration layer (SQLite on a temp file). */
async function ringToRegister(hooks: HookRunnerLike, dir: string, calls: number): Promise<{ p50: number; p99: number }> {
  const store = openStore(join(dir, `latency-${Date.now()}.sqlite`));
  const stopCheckpoints = store.startCheckpoints(); // as the daemon runs it
  let fedAt = 0;
  const samples: number[] = [];
  const client = new DryRunClient((r) => {
    if (r.method === 'telephony.externalCall.register') samples.push(performance.now() - fedAt);
  });
  const users = { userFor: async (ext: string | undefined) => (ext ? Number(ext) : undefined) };
  const dispatcher = new Dispatcher({
    client, users, hooks, log: silentLogger(), defaultUserId: 1, crmCreate: true, addToChat: true, defaultCountry: 'RU',
    timezone: 'Europe/Moscow', dryRun: true,
    recordings: { pbxDir: '/', localDir: '/', attach: false, readyTimeoutMs: 0, uploadThresholdBytes: 1 },
  });
  const outbox = new Outbox(store, { handler: (op, prior) => dispatcher.handle(op.payload as IntentOp, prior), merge: mergeCardOps, log: silentLogger() });
  outbox.start();
  const session = new PbxSession({ name: 'bench', machine: LAB, store, outbox, log: silentLogger() });
  const frames = traceFrames('inbound-answered.jsonl');
  const parse = (raw: string) => new AmiParser().push(raw)[0]!;
  for (let c = 0; c < calls; c++) {
    for (const raw of frames) {
      const msg = parse(rewriteIdentities(raw, c + 1));
      const event = toCallEvent({ ...msg, receivedAt: Date.now() });
      if (!event) continue;
      if (event.type === 'dialBegin') {
        const sent = samples.length;
        fedAt = performance.now();
        session.feed(event);
        session.flush();
        while (samples.length === sent) await new Promise((r) => setImmediate(r));
      } else {
        session.feed(event);
        session.flush();
      }
    }
    await outbox.idle();
  }
  await outbox.stop();
  stopCheckpoints();
  store.close();
  const sorted = samples.slice(20).sort((a, b) => a - b); // first calls warm the JIT and SQLite
  return { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)) };
}

/** The inbound-answered trace's call events, once; `copy(n)` gives call n with its own identities and time. */
function callTemplate(): (n: number, at0: number) => CallEvent[] {
  const events: CallEvent[] = [];
  for (const raw of traceFrames('inbound-answered.jsonl')) {
    const e = toCallEvent({ ...new AmiParser().push(raw)[0]!, receivedAt: 0 });
    if (e) events.push(e);
  }
  const t0 = events[0]!.at;
  const json = events.map((e) => JSON.stringify({ ...e, at: e.at - t0 }));
  return (n, at0) => json.map((j) => {
    const e = JSON.parse(j.replaceAll('1795324160.12', `${n}.12`).replaceAll('"bridgeId":"', `"bridgeId":"${n}-`)) as CallEvent;
    return { ...e, at: e.at + at0 };
  });
}

/** 3. Memory: 100k calls through parser-free mapping + the call machine; RSS after 10k and after 100k. */
function memory(): Record<string, number> {
  const copy = callTemplate();
  const machine = new CallMachine(LAB);
  let world = machine.initial();
  const rss: number[] = [];
  const heap: number[] = [];
  for (let n = 1; n <= 100_000; n++) {
    for (const e of copy(n, n * 1000)) world = machine.step(world, e).world;
    if (n === 10_000 || n === 100_000) {
      global.gc?.();
      const u = process.memoryUsage();
      rss.push(u.rss);
      heap.push(u.heapUsed);
    }
  }
  const mb = (b: number) => round(b / 2 ** 20, 1);
  // Live memory (the heap after a full GC) is what a leak would grow; RSS also keeps what the allocator has not
  // given back, so it is reported but is not the leak signal.
  return {
    calls: 100_000, openCallsAtEnd: Object.keys(world.calls).length,
    heapAfter10kMb: mb(heap[0]!), heapAfter100kMb: mb(heap[1]!), growthMb: mb(heap[1]! - heap[0]!),
    rssAfter10kMb: mb(rss[0]!), rssAfter100kMb: mb(rss[1]!),
  };
}

/** 4. Sustained throughput: answered calls through the whole daemon against a Bitrix24 limited to 2 req/s, burst 50. */
async function throughputAgainstLimit(dir: string, calls: number): Promise<Record<string, number>> {
  const bitrix = new BitrixEmulator({ rateLimit: { ratePerSec: 2, burst: 50 } });
  await bitrix.listen();
  const config = parseConfig(`
ami: { username: bench, secret: bench-secret }
bitrix24: { webhook_url: "${bitrix.webhookUrl}", default_user_id: 1 }
pbx: { trunks: [provider], recordings: { attach: false } }
http: { enabled: false }
storage: { path: ${join(dir, 'throughput.sqlite')} }
customizations: { dir: ${join(dir, 'no-hooks')}, watch: false }
`, join(dir, 'config.yaml'));
  const daemon = new Daemon({ config, log: silentLogger(), withoutAmi: true });
  await daemon.start();
  const session = daemon.sessions[0]!;
  const copy = callTemplate();
  const t0 = performance.now();
  for (let n = 1; n <= calls; n++) {
    for (const e of copy(n, Date.now())) session.feed(e);
    if (n % 50 === 0) session.flush();
  }
  session.flush();
  await daemon.outbox.idle();
  const seconds = (performance.now() - t0) / 1000;
  const finished = [...bitrix.calls.values()].filter((c) => c.finished?.statusCode === '200').length;
  const httpRequests = bitrix.requests.filter((r) => !r.viaBatch).length;
  const refused = bitrix.requests.filter((r) => r.httpStatus === 503).length;
  await daemon.stop();
  await bitrix.close();
  return { calls, finished, seconds: round(seconds, 1), callsPerHour: Math.round((finished / seconds) * 3600), httpRequests, refused };
}

/**
 * 5. The whole daemon's memory, as the OS sees it: `run` in its own process (SQLite, outbox, HTTP, AMI client)
 * while the AMI simulator replays `calls` missed calls in rounds of `perRound` simultaneous ones and the
 * emulator answers. RSS (from /proc) after the first 10k calls and at the end; the daemon's heap from /metrics.
 */
async function daemonRss(dir: string, calls: number, perRound: number): Promise<Record<string, number>> {
  const bitrix = new BitrixEmulator();
  await bitrix.listen();
  const ami = new AmiSimulator({ secret: 'bench-secret' });
  await ami.listen();
  const port = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  const config = join(dir, 'rss.yaml');
  writeFileSync(config, `
ami: { host: 127.0.0.1, port: ${ami.port}, username: bx24, secret: bench-secret }
bitrix24: { webhook_url: "${bitrix.webhookUrl}", default_user_id: 1, rate_limit: { per_second: 100000, burst: 100000 } }
pbx: { trunks: [provider] }
http: { host: 127.0.0.1, port: ${port} }
storage: { path: ${join(dir, 'rss.sqlite')} }
customizations: { dir: ${join(dir, 'no-hooks')}, watch: false }
log: { level: error }
`);
  const child = spawn(process.execPath, [join(ROOT, 'src/cli.ts'), 'run', '--config', config], { stdio: 'ignore', env: { PATH: process.env.PATH ?? '' } });
  const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
  const heapMb = async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(text)![1]) / 2 ** 20;
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  try {
    while (ami.openConnections === 0 || !(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false))) await sleep(50);
    const trace = join(ROOT, 'test/fixtures/ami/inbound-no-answer.jsonl');
    const samples: Array<{ calls: number; rssMb: number; heapMb: number }> = [];
    const t0 = performance.now();
    for (let done = 0; done < calls; done += perRound) {
      ami.play(trace, { copies: perRound, firstCopy: done, actionWaitMs: 10 });
      await ami.done();
      let finished = 0;
      while ((finished = [...bitrix.calls.values()].filter((c) => c.finished).length) < done + perRound) await sleep(20);
      bitrix.requests.length = 0; // the emulator's own log is the bench's memory, not the daemon's
      if (finished === 10_000 || finished === calls) samples.push({ calls: finished, rssMb: rssMb(), heapMb: await heapMb() });
    }
    const [first, last] = [samples[0]!, samples[samples.length - 1]!];
    return {
      calls, perRound, seconds: round((performance.now() - t0) / 1000, 1),
      rssAfter10kMb: round(first.rssMb, 1), rssAtEndMb: round(last.rssMb, 1), rssGrowthMb: round(last.rssMb - first.rssMb, 1),
      heapAfter10kMb: round(first.heapMb, 1), heapAtEndMb: round(last.heapMb, 1),
    };
  } finally {
    child.kill('SIGTERM');
    await ami.close();
    await bitrix.close();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ab24-bench-'));
  const results: Record<string, unknown> = { node: process.version, date: new Date().toISOString() };
  try {
    process.stdout.write('measuring AMI throughput…\n');
    results.throughput = throughput();

    process.stdout.write('measuring ringing → register latency…\n');
    global.gc?.(); // the throughput stage's garbage is the bench's, not the daemon's
    const noHooks = await ringToRegister(NO_HOOKS, dir, 300);
    const hookDir = join(dir, 'hooks');
    mkdirSync(hookDir);
    const five: Record<string, string> = {
      'need_registration.js': `module.exports = (i) => ({ data: { need_registration: i.params.trunk !== 'fax' }, state: 'success' });`,
      'process_phone_number.js': `module.exports = (i) => ({ data: { phone: i.params.phone.replace(/^8/, '+7') }, state: 'success' });`,
      'process_search_params.js': `module.exports = () => ({ data: { CRM_SOURCE: 'CALL' }, state: 'success' });`,
      'process_registration_params.js': `module.exports = () => ({ data: { ADD_TO_CHAT: 0 }, state: 'success' });`,
      'process_final_params.js': `module.exports = (i) => ({ data: i.params, state: 'success' });`,
    };
    for (const [name, text] of Object.entries(five)) writeFileSync(join(hookDir, name), text);
    const runner = new HookRunner({ dir: hookDir, log: silentLogger(), watch: false });
    await runner.start();
    const withHooks = await ringToRegister(runner, dir, 300);
    await runner.stop();
    results.ringToRegisterMs = { noHooks, fiveHooks: withHooks };

    process.stdout.write('measuring customization hooks…\n');
    results.hooks = await benchHooks();

    process.stdout.write('measuring memory over 100k calls…\n');
    results.memory = memory();

    process.stdout.write('measuring throughput against a Bitrix24 limited to 2 req/s, burst 50…\n');
    results.throughput2rps = await throughputAgainstLimit(dir, 2000);

    // BENCH_RSS_CALLS=0 skips this stage (it takes about 20 minutes on two cores).
    const rssCalls = Number(process.env['BENCH_RSS_CALLS'] ?? 100_000);
    if (rssCalls > 0) {
      process.stdout.write(`measuring the daemon process's RSS over ${rssCalls.toLocaleString('en')} calls (about 20 minutes)…\n`);
      results.daemonRss = await daemonRss(dir, rssCalls, 1000);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(join(ROOT, 'bench'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results.json'), JSON.stringify(results, null, 2) + '\n');

  const t = results.throughput as Record<string, number>;
  const l = results.ringToRegisterMs as { noHooks: { p50: number; p99: number }; fiveHooks: { p50: number; p99: number } };
  const h = results.hooks as Record<string, number>;
  const m = results.memory as Record<string, number>;
  const q = results.throughput2rps as Record<string, number>;
  const d = results.daemonRss as Record<string, number> | undefined;
  const rows: Array<[string, string, string]> = [
    ['AMI framing + parsing', `${t.framingEventsPerSec!.toLocaleString('en')} events/s`, ''],
    ['+ mapping + call machine', `${t.fullPathEventsPerSec!.toLocaleString('en')} events/s`, `${Math.round(t.fullToFramingRatio! * 100)} % of framing (goal ≥ 50 %, ≥ 100k/s)`],
    ['ringing → register, no hooks', `p50 ${l.noHooks.p50} ms, p99 ${l.noHooks.p99} ms`, 'goal p99 ≤ 5 ms'],
    ['ringing → register, 5 hooks', `p50 ${l.fiveHooks.p50} ms, p99 ${l.fiveHooks.p99} ms`, 'goal p99 ≤ 10 ms'],
    ['hook call (warm)', `p50 ${round(h.warmP50Ms!)} ms, p99 ${round(h.warmP99Ms!)} ms`, 'goal p50 ≤ 0.3 ms, p99 ≤ 2 ms'],
    ['hook sandbox restart', `${round(h.childRestartMs!, 1)} ms`, ''],
    ['chain of five hooks', `${round(h.chainOfFiveMs!)} ms`, ''],
    ['live heap, 10k → 100k calls', `${m.heapAfter10kMb} → ${m.heapAfter100kMb} MB (${m.growthMb! >= 0 ? '+' : ''}${m.growthMb} MB)`, `goal flat, < +30 MB (RSS ${m.rssAfter10kMb} → ${m.rssAfter100kMb} MB)`],
    d ? ['daemon RSS, 10k → end', `${d.rssAfter10kMb} → ${d.rssAtEndMb} MB (${d.rssGrowthMb! >= 0 ? '+' : ''}${d.rssGrowthMb} MB)`, `goal flat, < +30 MB; ${d.calls!.toLocaleString('en')} calls in rounds of ${d.perRound}, ${d.seconds} s; heap ${d.heapAfter10kMb} → ${d.heapAtEndMb} MB`]
      : ['daemon RSS', 'skipped (BENCH_RSS_CALLS=0)', ''],
    ['answered calls at 2 req/s', `${q.callsPerHour!.toLocaleString('en')} calls/hour`, `goal ≥ 10,000; ${q.finished}/${q.calls} finished, ${q.httpRequests} requests, ${q.refused} refused`],
  ];
  process.stdout.write(`\n${rows.map(([a, b, c]) => `  ${a.padEnd(30)}${b.padEnd(34)}${c}`).join('\n')}\n\nwritten to bench/results.json\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
