import net from 'node:net';
import { afterEach, describe, expect, test } from '@jest/globals';
import { AmiClient } from '../../src/ami/client.ts';
import type { AmiClientOptions, AmiConnectedInfo, AmiDisconnectedInfo } from '../../src/ami/client.ts';
import type { AmiMessage } from '../../src/ami/message.ts';
import { DaemonError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { AmiSimulator, readTrace } from '../fakes/ami-simulator.ts';
import { frameFields } from '../fakes/ami-trace.ts';
import { fixture, nextEvent, waitFor } from './helpers.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function simulator(opts: ConstructorParameters<typeof AmiSimulator>[0] = {}): Promise<AmiSimulator> {
  const sim = new AmiSimulator(opts);
  await sim.listen();
  cleanups.push(() => sim.close());
  return sim;
}

/** A client with test-sized timers; `events` collects every AMI event it emitted. */
function client(sim: AmiSimulator, opts: Partial<AmiClientOptions> = {}): { ami: AmiClient; events: AmiMessage[] } {
  const ami = new AmiClient(
    {
      name: 'test',
      host: '127.0.0.1',
      port: sim.port,
      username: 'bx24',
      secret: 'lab',
      connectTimeoutMs: 1000,
      actionTimeoutMs: 2000,
      keepaliveIntervalMs: 60_000,
      keepaliveTimeoutMs: 1000,
      reconnect: { minDelayMs: 10, maxDelayMs: 100 },
      ...opts,
    },
    silentLogger(),
  );
  const events: AmiMessage[] = [];
  ami.on('event', (msg) => events.push(msg));
  cleanups.push(() => ami.stop());
  return { ami, events };
}

async function connected(ami: AmiClient): Promise<AmiConnectedInfo> {
  const info = nextEvent<AmiConnectedInfo>(ami, 'connected');
  ami.start();
  return info;
}

async function rejection(promise: Promise<unknown>): Promise<DaemonError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(DaemonError);
    return error as DaemonError;
  }
  throw new Error('expected a rejection');
}

describe('AmiClient login', () => {
  test('logs in with the configured user and Events mask and reports the banner', async () => {
    const sim = await simulator();
    const { ami } = client(sim, { events: 'call,system' });
    expect(ami.isConnected).toBe(false);
    const info = await connected(ami);
    expect(info).toEqual({ banner: 'Asterisk Call Manager/11.0.0', reconnects: 0 });
    expect(await ami.ready()).toBe(info);
    expect(ami.isConnected).toBe(true);
    expect(ami.lastKeepaliveOkAt).toBeGreaterThan(0);
    expect(sim.actions.map((a) => [a.name, a.fields['Username'], a.fields['Secret'], a.fields['Events']])).toEqual([
      ['Login', 'bx24', 'lab', 'call,system'],
    ]);
    expect(sim.actions[0]?.fields['ActionID']).toMatch(/^test-[0-9a-f]{6}-1$/);
  });

  test('a wrong secret gives E_AMI_AUTH without the secret, and retries back off instead of looping', async () => {
    const sim = await simulator();
    const secret = 'wrong-secret-4711';
    const { ami } = client(sim, { secret, reconnect: { minDelayMs: 20, maxDelayMs: 1000 } });
    const errors: DaemonError[] = [];
    ami.on('error', (e) => errors.push(e));
    ami.start();
    const refused = await rejection(ami.ready());
    expect(refused.code).toBe('E_AMI_AUTH');
    expect(refused.message).toContain('refused Login as "bx24": Authentication failed');
    expect(refused.message).not.toContain(secret);
    expect(errors[0]).toBe(refused);

    const loginTimes = () => sim.actions.filter((a) => a.name === 'Login').length;
    const at: number[] = [];
    for (let n = 1; n <= 5; n++) {
      await waitFor(() => loginTimes() >= n, `login attempt ${n}`);
      at.push(Date.now());
    }
    // Delays 20·2^k with jitter in [base/2, base): the 4th retry waits at least 160/2 ms.
    expect((at[4] ?? 0) - (at[3] ?? 0)).toBeGreaterThanOrEqual(75);
    expect(errors.length).toBeGreaterThanOrEqual(4);
    expect(errors.every((e) => e.code === 'E_AMI_AUTH' && !e.message.includes(secret))).toBe(true);
    expect(ami.isConnected).toBe(false);
  });

  test('a peer that drops connections is retried until Asterisk is there', async () => {
    // Something that accepts and drops at once (a PBX still booting), then Asterisk on the same port.
    let dropped = 0;
    const booting = net.createServer((socket) => {
      dropped++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => booting.listen(0, '127.0.0.1', resolve));
    const port = (booting.address() as net.AddressInfo).port;
    const sim = new AmiSimulator();
    const { ami } = client({ port } as AmiSimulator);
    const disconnects: unknown[] = [];
    ami.on('disconnected', (d) => disconnects.push(d));
    ami.start();
    const ready = ami.ready();
    await waitFor(() => dropped >= 3, 'three dropped attempts');
    await new Promise<void>((resolve) => booting.close(() => resolve()));
    await sim.listen(port);
    cleanups.push(() => sim.close());
    expect((await ready).reconnects).toBe(0);
    expect(disconnects).toEqual([]); // never logged in, so never 'disconnected'
  });
});

describe('AmiClient event order', () => {
  test("events in the same TCP chunk as the Login answer come after 'connected'", async () => {
    // A bare server, so the Login answer and the events are one write (one chunk).
    const server = net.createServer((socket) => {
      socket.write('Asterisk Call Manager/11.0.0\r\n');
      socket.setEncoding('utf8');
      socket.on('data', (data: string) => {
        const id = /ActionID: (.*)\r\n/.exec(data)?.[1] ?? '';
        if (data.startsWith('Action: Login')) {
          socket.write(`Response: Success\r\nActionID: ${id}\r\nMessage: Authentication accepted\r\n\r\nEvent: FullyBooted\r\nPrivilege: system,all\r\n\r\n`);
        } else if (data.startsWith('Action: Logoff')) {
          socket.end(`Response: Goodbye\r\nActionID: ${id}\r\n\r\n`);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { ami } = client({ port: (server.address() as net.AddressInfo).port } as AmiSimulator);
    const order: string[] = [];
    ami.on('connected', () => order.push('connected'));
    ami.on('event', (e) => order.push(e.name));
    ami.start();
    await waitFor(() => order.length === 2, 'login and event');
    expect(order).toEqual(['connected', 'FullyBooted']);
  });
});

describe('AmiClient actions', () => {
  test('200 concurrent Pings each resolve with their own ActionID', async () => {
    const sim = await simulator();
    const { ami } = client(sim);
    await connected(ami);
    const results = await Promise.all(Array.from({ length: 200 }, () => ami.action('Ping')));
    const ids = new Set(results.map((r) => r.actionId));
    expect(ids.size).toBe(200);
    for (const result of results) {
      expect(result.response.kind).toBe('response');
      expect(result.response.name).toBe('Success');
      expect(result.response.fields['ActionID']).toBe(result.actionId);
      expect(result.response.fields['Ping']).toBe('Pong');
      expect(result.response.fields['Timestamp']).toMatch(/^\d{10}\.\d{6}$/);
      expect(result.events).toEqual([]);
    }
  });

  test('a list action collects its items up to the Complete event (recorded answer of mid-call-connect)', async () => {
    const sim = await simulator();
    sim.play(fixture('mid-call-connect'), { speed: 20 });
    const { ami, events } = client(sim);
    await connected(ami);
    const result = await ami.action('CoreShowChannels');
    expect(result.response.fields).toMatchObject({ Response: 'Success', EventList: 'start', Message: 'Channels will follow', ActionID: result.actionId });
    expect(result.events.map((e) => [e.name, e.fields['Channel'], e.fields['Linkedid'], e.fields['ActionID']])).toEqual([
      ['CoreShowChannel', 'PJSIP/provider-000000c4', '1795326466.357', result.actionId],
      ['CoreShowChannel', 'PJSIP/102-000000c6', '1795326466.357', result.actionId],
    ]);
    expect(result.complete?.name).toBe('CoreShowChannelsComplete');
    expect(result.complete?.fields['ListItems']).toBe('2');
    // List items are 'event's too.
    expect(events.filter((e) => e.fields['ActionID'] === result.actionId).map((e) => e.name)).toEqual([
      'CoreShowChannel', 'CoreShowChannel', 'CoreShowChannelsComplete',
    ]);
  });

  test('Response: Error rejects with E_AMI_ACTION naming the action and Asterisk\'s message', async () => {
    const sim = await simulator();
    const { ami } = client(sim);
    await connected(ami);
    const error = await rejection(ami.action('NoSuchAction'));
    expect(error.code).toBe('E_AMI_ACTION');
    expect(error.message).toBe('NoSuchAction failed: Invalid/unknown command: NoSuchAction. Use Action: ListCommands to show available commands.');
  });

  test('an unanswered action times out with E_AMI_TIMEOUT; the connection stays usable', async () => {
    const sim = await simulator();
    const { ami } = client(sim);
    await connected(ami);
    sim.setSilent(true);
    const error = await rejection(ami.action('Ping', {}, { timeoutMs: 100 }));
    expect(error.code).toBe('E_AMI_TIMEOUT');
    expect(error.message).toMatch(/^Ping got no answer within 100 ms \(ActionID test-[0-9a-f]{6}-2\)$/);
    sim.setSilent(false);
    expect((await ami.action('Ping')).response.name).toBe('Success');
  });

  test('CR or LF in a key or value rejects the action before anything is sent', async () => {
    const sim = await simulator();
    const { ami } = client(sim);
    await connected(ami);
    const before = sim.actions.length;
    const injected = await rejection(ami.action('Originate', { Channel: 'PJSIP/101\r\nAction: Hangup\r\nChannel: PJSIP/102', Exten: '100' }));
    expect(injected.code).toBe('E_AMI_ACTION');
    expect(injected.message).toBe('Originate: field Channel contains a line break (CR or LF)');
    const lf = await rejection(ami.action('Setvar', { Variable: ['A=1', 'B=2\n'] }));
    expect(lf.message).toBe('Setvar: field Variable contains a line break (CR or LF)');
    const key = await rejection(ami.action('Getvar', { 'Variable\r\nAction: Hangup': 'x' }));
    expect(key.code).toBe('E_AMI_ACTION');
    const name = await rejection(ami.action('Ping\r\nAction: Hangup'));
    expect(name.code).toBe('E_AMI_ACTION');
    // A later action arrives alone: nothing of the rejected ones reached Asterisk.
    await ami.action('Ping');
    expect(sim.actions.slice(before).map((a) => a.name)).toEqual(['Ping']);
  });

  test('array values become repeated keys, numbers are sent as text, undefined is left out', async () => {
    const sim = await simulator();
    const { ami } = client(sim);
    await connected(ami);
    const result = await ami.action('Originate', { Channel: 'PJSIP/101', Priority: 1, Variable: ['A=1', 'B=2'], Account: undefined });
    expect(result.response.fields['Message']).toBe('Originate successfully queued');
    const sent = sim.actions[sim.actions.length - 1]?.raw;
    expect(sent).toBe(`Action: Originate\r\nActionID: ${result.actionId}\r\nChannel: PJSIP/101\r\nPriority: 1\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n`);
  });

  test('an action while disconnected rejects at once with E_AMI_CONNECT; a pending one rejects on disconnect', async () => {
    const sim = await simulator();
    const { ami } = client(sim);
    const early = await rejection(ami.action('Ping'));
    expect(early.code).toBe('E_AMI_CONNECT');
    expect(early.message).toBe('Ping not sent: AMI test is not connected');
    await connected(ami);
    sim.setSilent(true);
    const pending = ami.action('Status', {}, { timeoutMs: 5000 });
    await waitFor(() => sim.actions.some((a) => a.name === 'Status'), 'Status at the simulator');
    sim.dropConnections();
    const lost = await rejection(pending);
    expect(lost.code).toBe('E_AMI_CONNECT');
    expect(lost.message).toMatch(/^Status aborted: AMI connection lost/);
  });
});

describe('AmiClient keepalive and reconnect', () => {
  test('keepalive Pings succeed, then a silent (half-open) peer is detected and the client reconnects when it is back', async () => {
    const sim = await simulator();
    const { ami } = client(sim, { keepaliveIntervalMs: 30, keepaliveTimeoutMs: 150, connectTimeoutMs: 200 });
    await connected(ami);
    const first = ami.lastKeepaliveOkAt;
    const keepalive = await nextEvent<{ rttMs: number; at: number }>(ami, 'keepalive');
    expect(keepalive.rttMs).toBeGreaterThanOrEqual(0);
    expect(ami.lastKeepaliveOkAt).toBe(keepalive.at);
    expect(ami.lastKeepaliveOkAt).toBeGreaterThanOrEqual(first);

    const disconnected = nextEvent<AmiDisconnectedInfo>(ami, 'disconnected');
    sim.setSilent(true);
    const silentSince = Date.now();
    expect((await disconnected).reason).toBe('keepalive Ping got no answer within 150 ms');
    expect(Date.now() - silentSince).toBeLessThan(1000);
    expect(ami.isConnected).toBe(false);
    // While silent, reconnect attempts get no banner and time out; once the peer answers again, login succeeds.
    const loginsWhileSilent = sim.connections;
    await waitFor(() => sim.connections >= loginsWhileSilent + 1, 'a reconnect attempt to the silent peer');
    const back = nextEvent<AmiConnectedInfo>(ami, 'connected');
    sim.setSilent(false);
    expect((await back).reconnects).toBe(1);
  });

  test('an abrupt TCP close gives disconnected, then connected again with reconnects 1', async () => {
    const sim = await simulator();
    const { ami } = client(sim);
    await connected(ami);
    const disconnected = nextEvent<AmiDisconnectedInfo>(ami, 'disconnected');
    const reconnected = nextEvent<AmiConnectedInfo>(ami, 'connected');
    sim.dropConnections();
    expect((await disconnected).reason).toBe('connection closed by Asterisk');
    expect(await reconnected).toEqual({ banner: 'Asterisk Call Manager/11.0.0', reconnects: 1 });
    expect((await ami.action('Ping')).response.name).toBe('Success');
    expect(sim.connections).toBe(2);
  });

  test('asterisk-restart: Shutdown, socket closed, a dropped reconnect, then session 2 arrives on the new login', async () => {
    const sim = await simulator({ speed: 100 });
    sim.play(fixture('asterisk-restart'), { rejectReconnects: 1 });
    const { ami, events } = client(sim);
    const order: string[] = [];
    ami.on('connected', (i) => order.push(`connected ${i.reconnects}`));
    ami.on('disconnected', () => order.push('disconnected'));
    ami.on('event', (e) => {
      if (e.name === 'Shutdown' || e.name === 'FullyBooted') order.push(`${e.name} ${e.fields['Uptime'] ?? ''}`.trim());
    });
    ami.start();
    await sim.done();
    await waitFor(() => events.some((e) => e.name === 'FullyBooted' && e.fields['Uptime'] === '0'), 'session 2 FullyBooted');
    expect(order).toEqual(['connected 0', 'FullyBooted 124', 'Shutdown', 'disconnected', 'connected 1', 'FullyBooted 0']);
    const shutdown = events.find((e) => e.name === 'Shutdown');
    expect(shutdown?.fields).toMatchObject({ Shutdown: 'Cleanly', Restart: 'True' });
    const session2 = events.slice(events.indexOf(shutdown as AmiMessage) + 1);
    expect(session2.map((e) => `${e.name}:${e.fields['Variable'] ?? ''}`)).toEqual([
      'SuccessfulAuth:', 'VarSet:TRUNK_CID', 'VarSet:REC_ROOT', 'FullyBooted:',
    ]);
    expect(sim.connections).toBe(3); // first session, the dropped attempt, session 2
  });

  test('stop() logs off, rejects nothing left hanging, and does not reconnect', async () => {
    const sim = await simulator();
    const { ami } = client(sim);
    await connected(ami);
    const disconnected = nextEvent<AmiDisconnectedInfo>(ami, 'disconnected');
    await ami.stop();
    expect((await disconnected).reason).toBe('stopped');
    expect(sim.actions.map((a) => a.name)).toEqual(['Login', 'Logoff']);
    expect((await rejection(ami.action('Ping'))).code).toBe('E_AMI_CONNECT');
    expect((await rejection(ami.ready())).code).toBe('E_AMI_CONNECT');
    await waitFor(() => sim.openConnections === 0, 'the simulator to see the close');
    expect(sim.connections).toBe(1);
  });

  test('two clients in one process each get their own session and the broadcast events', async () => {
    const sim = await simulator();
    const a = client(sim, { name: 'a' });
    const b = client(sim, { name: 'b' });
    await Promise.all([connected(a.ami), connected(b.ami)]);
    sim.play(fixture('inbound-busy'));
    await sim.done();
    const expected = readTrace(fixture('inbound-busy')).lines.filter((l) => l.dir === 'in' && l.raw.startsWith('Event: ')).length;
    await waitFor(() => a.events.length === expected && b.events.length === expected, 'both clients to get every event');
    const [pa, pb] = await Promise.all([a.ami.action('Ping'), b.ami.action('Ping')]);
    expect(pa.actionId.startsWith('a-')).toBe(true);
    expect(pb.actionId.startsWith('b-')).toBe(true);
  });
});

describe('AmiClient with recorded call traces', () => {
  test('click-to-call-answered: Originate resolves on its Response, OriginateResponse follows with the same ActionID', async () => {
    const sim = await simulator({ speed: 50 });
    sim.play(fixture('click-to-call-answered'));
    const { ami, events } = client(sim);
    await connected(ami);
    const recorded = frameFields(readTrace(fixture('click-to-call-answered')).lines.find((l) => l.dir === 'out' && l.raw.includes('Originate'))?.raw ?? '');
    const { Action: _a, ActionID: _id, ...fields } = recorded;
    expect(fields).toEqual({ Channel: 'PJSIP/101', Context: 'from-internal', Exten: '89161234567', Priority: '1', CallerID: '89161234567', Async: 'true' });
    const result = await ami.action('Originate', fields);
    expect(result.response.fields).toEqual({ Response: 'Success', ActionID: result.actionId, Message: 'Originate successfully queued' });
    await waitFor(() => events.some((e) => e.name === 'OriginateResponse'), 'OriginateResponse');
    const originate = events.find((e) => e.name === 'OriginateResponse');
    expect(originate?.fields).toMatchObject({ ActionID: result.actionId, Response: 'Success', Channel: 'PJSIP/101-00000067', Reason: '4', Uniqueid: '1795324335.193' });
    expect(originate?.fields['Timestamp']).toMatch(/^\d{10}\.\d{6}$/);
    await sim.done();
  });

  test('inbound-answered at full speed: every recorded event arrives, in order, with Timestamp = base + t', async () => {
    const base = 1_795_324_000_000;
    const sim = await simulator({ speed: Infinity, baseEpochMs: base });
    sim.play(fixture('inbound-answered'));
    const { ami, events } = client(sim);
    await connected(ami);
    await sim.done();
    const recorded = readTrace(fixture('inbound-answered')).lines.filter((l) => l.dir === 'in' && l.raw.startsWith('Event: '));
    await waitFor(() => events.length >= recorded.length, 'every replayed event');
    expect(events).toHaveLength(recorded.length);
    events.forEach((event, i) => {
      const line = recorded[i];
      const { Timestamp, ...rest } = event.fields;
      expect(rest).toEqual(frameFields(line?.raw ?? ''));
      expect(Timestamp).toBe(((base + (line?.t ?? 0)) / 1000).toFixed(6));
      expect(Object.keys(event.fields)[2]).toBe('Timestamp'); // after Event and Privilege, like Asterisk
    });
  });
});
