import net from 'node:net';
import { afterEach, describe, expect, test } from '@jest/globals';
import { AmiClient } from '../../src/ami/client.ts';
import type { AmiConnectedInfo } from '../../src/ami/client.ts';
import type { AmiMessage } from '../../src/ami/message.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { AmiSimulator, readTrace, rewriteIdentities } from '../fakes/ami-simulator.ts';
import { frameField } from '../fakes/ami-trace.ts';
import { fixture, nextEvent, waitFor } from './helpers.ts';

// The simulator is a test fake, but load and daemon tests lean on its behaviour, so it is pinned down here
// (through our real AMI client over TCP).

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(opts: ConstructorParameters<typeof AmiSimulator>[0] = {}) {
  const sim = new AmiSimulator(opts);
  await sim.listen();
  cleanups.push(() => sim.close());
  const ami = new AmiClient(
    { host: '127.0.0.1', port: sim.port, username: 'bx24', secret: 'lab', actionTimeoutMs: 3000, reconnect: { minDelayMs: 10, maxDelayMs: 50 } },
    silentLogger(),
  );
  const events: AmiMessage[] = [];
  ami.on('event', (e) => events.push(e));
  cleanups.push(() => ami.stop());
  const connect = async () => {
    const connected = nextEvent<AmiConnectedInfo>(ami, 'connected');
    ami.start();
    await connected;
  };
  return { sim, ami, events, connect };
}

const recordedEvents = (name: string) => readTrace(fixture(name)).lines.filter((l) => l.dir === 'in' && l.raw.startsWith('Event: '));

describe('readTrace', () => {
  test('parses the header and the lines', () => {
    const trace = readTrace(fixture('asterisk-restart'));
    expect(trace.header.format).toBe('ami-trace/1');
    expect(trace.header.ami_banner).toBe('Asterisk Call Manager/11.0.0');
    expect(trace.lines).toHaveLength(119);
    expect(trace.lines[0]).toEqual({ t: 0.4, dir: 'in', raw: 'Asterisk Call Manager/11.0.0\r\n' });
    expect(trace.lines.filter((l) => l.session === 2)[0]?.raw).toBe('Asterisk Call Manager/11.0.0\r\n');
  });
});

describe('AmiSimulator scripted actions', () => {
  test('a scripted action the client never sends is skipped after actionWaitMs, with every line of its ActionID', async () => {
    const { sim, events, connect } = await setup();
    sim.play(fixture('mid-call-connect'), { actionWaitMs: 30 });
    await connect();
    await sim.done();
    const expected = recordedEvents('mid-call-connect').filter((l) => frameField(l.raw, 'ActionID') === undefined);
    await waitFor(() => events.length >= expected.length, 'the unsolicited events');
    expect(events.map((e) => e.name)).toEqual(expected.map((l) => frameField(l.raw, 'Event')));
    expect(events.some((e) => e.name === 'CoreShowChannel' || e.name === 'Status')).toBe(false);
    expect(sim.actions.map((a) => a.name)).toEqual(['Login']);
  });

  test('a scripted action sent early is held and answered where the recording has it, after the earlier events', async () => {
    const { sim, ami, events, connect } = await setup({ speed: 10 });
    sim.play(fixture('actions-during-call'), { actionWaitMs: 50 });
    await connect();
    const lines = readTrace(fixture('actions-during-call')).lines;
    const step = lines.find((l) => l.dir === 'out' && l.raw.startsWith('Action: CoreShowChannels')) ?? lines[0];
    const eventsBefore = lines.filter((l) => l.dir === 'in' && l.t < (step?.t ?? 0) && l.raw.startsWith('Event: ')).length;
    const result = await ami.action('CoreShowChannels');
    // The answer waited for the replay to reach the recorded point.
    expect(events.filter((e) => e.fields['ActionID'] === undefined).length).toBeGreaterThanOrEqual(eventsBefore);
    expect(result.events.map((e) => e.fields['Channel'])).toEqual(['PJSIP/provider-000000be', 'PJSIP/101-000000bf']);
    expect(result.complete?.fields['ListItems']).toBe('2');
  });

  test('unscripted CoreShowChannels answers from the live channels of the replay', async () => {
    const { sim, ami, events, connect } = await setup({ speed: 10 });
    sim.play(fixture('inbound-answered'));
    await connect();
    await waitFor(() => events.filter((e) => e.name === 'BridgeEnter').length === 2, 'both channels in the bridge', 8000);
    const bridge = events.find((e) => e.name === 'BridgeEnter')?.fields['BridgeUniqueid'];
    const live = await ami.action('CoreShowChannels');
    expect(live.events.map((e) => [e.fields['Channel'], e.fields['Linkedid'], e.fields['BridgeId'], e.fields['Application'], e.fields['ChannelStateDesc']])).toEqual([
      ['PJSIP/provider-00000043', '1795324160.126', bridge, 'Dial', 'Up'],
      ['PJSIP/101-00000044', '1795324160.126', bridge, 'AppDial', 'Up'],
    ]);
    expect(live.events[0]?.fields['Duration']).toMatch(/^00:00:0\d$/);
    expect(live.complete?.fields['ListItems']).toBe('2');
    await sim.done();
    const after = await ami.action('CoreShowChannels');
    expect(after.events).toEqual([]);
    expect(after.complete?.fields['ListItems']).toBe('0');
  });
});

describe('AmiSimulator composition', () => {
  test('traces back to back on one connection: all events, one login, Timestamps never go back', async () => {
    const { sim, events, connect } = await setup();
    sim.play([fixture('inbound-busy'), fixture('outbound-busy')]);
    await connect();
    await sim.done();
    const first = recordedEvents('inbound-busy');
    // The second trace's Login-time events are left out: no Login happened for it.
    const loginEvent = (raw: string) => raw.startsWith('Event: FullyBooted\r\n') || (raw.startsWith('Event: SuccessfulAuth\r\n') && frameField(raw, 'Service') === 'AMI');
    const second = recordedEvents('outbound-busy').filter((l) => !loginEvent(l.raw));
    expect(second.length).toBe(recordedEvents('outbound-busy').length - 2);
    await waitFor(() => events.length >= first.length + second.length, 'both traces');
    expect(events.map((e) => e.name)).toEqual([...first, ...second].map((l) => frameField(l.raw, 'Event')));
    expect(events.filter((e) => e.name === 'FullyBooted')).toHaveLength(1);
    const stamps = events.map((e) => Number(e.fields['Timestamp']));
    expect(stamps.every((s, i) => i === 0 || s >= (stamps[i - 1] ?? 0))).toBe(true);
    expect(sim.connections).toBe(1);
  });

  test('copies run side by side as distinct calls (uniqueids, channels, bridges, recording paths)', async () => {
    const { sim, events, connect } = await setup();
    sim.play(fixture('inbound-answered'), { copies: 3 });
    await connect();
    await sim.done();
    const perCopy = recordedEvents('inbound-answered').length - 2; // FullyBooted/SuccessfulAuth only once
    await waitFor(() => events.length >= 2 + perCopy * 3, 'three copies');
    expect(events).toHaveLength(2 + perCopy * 3);
    const newchannels = events.filter((e) => e.name === 'Newchannel');
    expect(newchannels.map((e) => e.fields['Uniqueid'])).toEqual(expect.arrayContaining(['1795324160.126', '1795324160.1000126', '1795324160.2000126']));
    expect(new Set(newchannels.map((e) => e.fields['Channel'])).size).toBe(6);
    expect(new Set(newchannels.map((e) => e.fields['Linkedid'])).size).toBe(3);
    expect(new Set(events.filter((e) => e.name === 'BridgeCreate').map((e) => e.fields['BridgeUniqueid'])).size).toBe(3);
    const hangups = events.filter((e) => e.name === 'Hangup');
    expect(hangups).toHaveLength(6);
    const cdrs = events.filter((e) => e.name === 'Cdr').map((e) => [e.fields['UniqueID'], e.fields['RecordingFile']]);
    for (const [uniqueid, file] of cdrs) expect(file).toBe(`/var/spool/asterisk/monitor/2026/11/22/${uniqueid}.wav`);
  });

  test('rewriteIdentities leaves clocks alone and keeps one copy self-consistent', () => {
    const raw = 'Event: X\r\nChannel: Local/102@from-internal-0000001a;1\r\nDestChannel: PJSIP/101-0000002a\r\n' +
      'Uniqueid: 1795324160.126\r\nSentNTP: 1795324160.123456\r\nBridgeUniqueid: 96acb609-8a08-44cf-84fa-816fe6f635aa\r\n\r\n';
    expect(rewriteIdentities(raw, 2)).toBe('Event: X\r\nChannel: Local/102@from-internal-0020001a;1\r\nDestChannel: PJSIP/101-0020002a\r\n' +
      'Uniqueid: 1795324160.2000126\r\nSentNTP: 1795324160.123456\r\nBridgeUniqueid: 96acb609-8a08-44cf-84fa-0002e6f635aa\r\n\r\n');
    expect(rewriteIdentities(raw, 0)).toBe(raw);
  });
});

describe('AmiSimulator robustness', () => {
  test('a client leaving mid-replay does not disturb it; the next client gets the rest live', async () => {
    const { sim, ami, events, connect } = await setup({ speed: 20 });
    sim.play(fixture('inbound-answered'));
    await connect();
    await waitFor(() => events.some((e) => e.name === 'Newchannel'), 'the call to start');
    await ami.stop();
    const seen = events.length;
    const { ami: second, events: later } = await (async () => {
      const next = new AmiClient({ host: '127.0.0.1', port: sim.port, username: 'bx24', secret: 'lab' }, silentLogger());
      const got: AmiMessage[] = [];
      next.on('event', (e) => got.push(e));
      cleanups.push(() => next.stop());
      next.start();
      await next.ready();
      return { ami: next, events: got };
    })();
    await sim.done();
    const total = recordedEvents('inbound-answered').length;
    await waitFor(() => later.some((e) => e.name === 'Hangup'), 'the rest of the call');
    expect(seen + later.length).toBeLessThanOrEqual(total);
    expect(later[later.length - 1]?.name).toBe(frameField(recordedEvents('inbound-answered').at(-1)?.raw ?? '', 'Event'));
    expect((await second.action('Ping')).response.name).toBe('Success');
  });

  test('Logoff gets Goodbye and a close', async () => {
    const { ami, connect } = await setup();
    await connect();
    const disconnected = nextEvent<{ reason: string }>(ami, 'disconnected');
    const goodbye = await ami.action('Logoff');
    expect(goodbye.response.name).toBe('Goodbye');
    expect((await disconnected).reason).toBe('connection closed by Asterisk');
  });

  test('actions before Login are refused like Asterisk does', async () => {
    const sim = new AmiSimulator();
    await sim.listen();
    cleanups.push(() => sim.close());
    const socket = net.connect(sim.port, '127.0.0.1');
    cleanups.push(async () => void socket.destroy());
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (received += d));
    await waitFor(() => received.includes('\r\n'), 'the banner');
    socket.write('Action: Ping\r\nActionID: p1\r\n\r\n');
    await waitFor(() => received.endsWith('\r\n\r\n'), 'the answer');
    expect(received).toBe('Asterisk Call Manager/11.0.0\r\nResponse: Error\r\nActionID: p1\r\nMessage: Permission denied\r\n\r\n');
  });
});
