import { readdirSync } from 'node:fs';
import { describe, expect, test } from '@jest/globals';
import { AmiParser } from '../../src/ami/parser.ts';
import { field, fieldList } from '../../src/ami/message.ts';
import type { AmiMessage } from '../../src/ami/message.ts';
import type { DaemonError } from '../../src/errors.ts';
import { frameFields, readTrace } from '../fakes/ami-trace.ts';
import { FIXTURES, fixture, prng } from './helpers.ts';

const traces = readdirSync(FIXTURES).filter((f) => f.endsWith('.jsonl')).sort();

/** What the client would read from Asterisk: every `in` line, sessions back to back. */
function inStream(name: string): { bytes: Buffer; frames: string[]; banners: number } {
  const lines = readTrace(fixture(name)).lines.filter((l) => l.dir === 'in');
  const frames = lines.filter((l) => !l.raw.startsWith('Asterisk Call Manager/')).map((l) => l.raw);
  return { bytes: Buffer.from(lines.map((l) => l.raw).join('')), frames, banners: lines.length - frames.length };
}

interface Run {
  messages: Array<Omit<AmiMessage, 'receivedAt'>>;
  errors: DaemonError[];
  banners: string[];
}

function parse(chunks: Iterable<Buffer | string>, maxFrameChars?: number): Run {
  const run: Run = { messages: [], errors: [], banners: [] };
  const parser = new AmiParser({
    ...(maxFrameChars === undefined ? {} : { maxFrameChars }),
    onBanner: (b) => run.banners.push(b),
    onError: (e) => run.errors.push(e),
  });
  for (const chunk of chunks) {
    for (const { receivedAt, ...msg } of parser.push(chunk)) {
      expect(typeof receivedAt).toBe('number');
      run.messages.push(msg);
    }
  }
  return run;
}

function* randomChunks(bytes: Buffer, seed: number, maxSize: number): Generator<Buffer> {
  const rand = prng(seed);
  for (let i = 0; i < bytes.length; ) {
    const size = 1 + Math.floor(rand() * maxSize);
    yield bytes.subarray(i, i + size);
    i += size;
  }
}

function* fixedChunks(bytes: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

describe('AmiParser on the recorded traces', () => {
  test.each(traces)('%s: whole stream = recorded frames, and every chunking gives the same messages', (name) => {
    const { bytes, frames, banners } = inStream(name);
    const whole = parse([bytes]);
    expect(whole.errors).toEqual([]);
    expect(whole.banners).toEqual(Array(banners).fill('Asterisk Call Manager/11.0.0'));
    expect(whole.messages).toHaveLength(frames.length);
    whole.messages.forEach((msg, i) => {
      const recorded = frameFields(frames[i] ?? '');
      expect({ ...msg.fields }).toEqual(recorded);
      expect(msg.kind).toBe(recorded['Event'] !== undefined ? 'event' : 'response');
      expect(msg.name).toBe(recorded['Event'] ?? recorded['Response']);
    });

    const oneByte = parse(fixedChunks(bytes, 1));
    expect(oneByte).toEqual(whole);
    for (const [seed, maxSize] of [[1, 7], [2, 100], [3, 1500], [4, 65536]] as const) {
      expect(parse(randomChunks(bytes, seed, maxSize))).toEqual(whole);
    }
  });
});

describe('AmiParser fields', () => {
  test('repeated Output keys of a Command answer (actions-idle, Asterisk 22) go to lists.Output in order', () => {
    const { bytes, frames } = inStream('actions-idle');
    const raw = frames.find((f) => f.includes('ActionID: idle-16-command-pjsip-show-endpoints')) ?? '';
    const expected = raw.split('\r\n').filter((l) => l.startsWith('Output:')).map((l) => l.slice('Output: '.length));
    expect(expected.length).toBeGreaterThan(20);
    const msg = parse([bytes]).messages.find((m) => m.fields['ActionID'] === 'idle-16-command-pjsip-show-endpoints');
    expect(msg?.lists['Output']).toEqual(expected);
    expect(msg?.fields['Output']).toBe(''); // the first CLI line is empty
    expect(expected[1]).toMatch(/^ Endpoint: {2}<Endpoint\/CID/); // leading spaces and inner ': ' are kept
    // A single Output line still is a list.
    const version = parse([bytes]).messages.find((m) => m.fields['ActionID'] === 'idle-15-command-core-show-version');
    expect(version?.lists['Output']).toEqual([version?.fields['Output']]);
  });

  test('Variable lines of Status with Variables (actions-during-call) go to lists.Variable', () => {
    const { bytes } = inStream('actions-during-call');
    const status = parse([bytes]).messages.find((m) => m.name === 'Status' && m.fields['ActionID'] === 'call-03-status-trunk-vars');
    expect(status?.lists['Variable']).toEqual([
      'FROM_DID=74951234567',
      'RECORDING_FILE=/var/spool/asterisk/monitor/2026/11/22/1795326402.347.wav',
      'MIXMONITOR_FILENAME=/var/spool/asterisk/monitor/2026/11/22/1795326402.347.wav',
    ]);
    expect(status?.fields['ActionID']).toBe('call-03-status-trunk-vars'); // ActionID is the last field here
  });

  test('values keep everything after the first ": "; `Key:` is an empty value; keys keep their case', () => {
    const { messages, errors } = parse([
      'Response: Success\r\nActionID: 7\r\nAbsoluteTimeout: Set absolute timeout.  (Priv: system,call,all)\r\n' +
        'Empty:\r\nSpaced: \r\nTight:value\r\nUniqueID: 1.2\r\nRepeat: a\r\nRepeat: b\r\nRepeat: c\r\n\r\n',
    ]);
    expect(errors).toEqual([]);
    const msg = messages[0];
    expect(msg?.fields).toEqual({
      Response: 'Success', ActionID: '7', AbsoluteTimeout: 'Set absolute timeout.  (Priv: system,call,all)',
      Empty: '', Spaced: '', Tight: 'value', UniqueID: '1.2', Repeat: 'a',
    });
    expect(msg?.lists).toEqual({ Repeat: ['a', 'b', 'c'] });
    const full = { ...msg, receivedAt: 0 } as AmiMessage;
    expect(field(full, 'uniqueid')).toBe('1.2');
    expect(field(full, 'Nope')).toBeUndefined();
    expect(fieldList(full, 'repeat')).toEqual(['a', 'b', 'c']);
    expect(fieldList(full, 'Tight')).toEqual(['value']);
  });

  test('wire keys such as constructor or __proto__ are plain keys', () => {
    const { messages } = parse(['Event: X\r\nconstructor: a\r\n__proto__: b\r\ntoString: c\r\n\r\n']);
    expect(messages[0]?.fields['constructor']).toBe('a');
    expect(messages[0]?.fields['__proto__']).toBe('b');
    expect(messages[0]?.fields['toString']).toBe('c');
    expect(messages[0]?.lists).toEqual({});
  });

  test('a UTF-8 character split across chunks (at every byte) survives', () => {
    const bytes = Buffer.from('Event: Newchannel\r\nCallerIDName: Иван Петров ☎\r\nUniqueid: 1.1\r\n\r\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      const { messages } = parse([bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect(messages[0]?.fields['CallerIDName']).toBe('Иван Петров ☎');
    }
    expect(parse(fixedChunks(bytes, 1)).messages[0]?.fields['CallerIDName']).toBe('Иван Петров ☎');
  });

  test('the banner is reported as soon as its line is complete, even split, and without a blank line', () => {
    const banners: string[] = [];
    const parser = new AmiParser({ onBanner: (b) => banners.push(b) });
    for (const ch of 'Asterisk Call Manager/2.10.6\r') expect(parser.push(ch)).toEqual([]);
    expect(banners).toEqual([]);
    parser.push('\n');
    expect(banners).toEqual(['Asterisk Call Manager/2.10.6']);
    expect(parser.banner).toBe('Asterisk Call Manager/2.10.6');
    expect(parser.push('Response: Success\r\nActionID: 1\r\n\r\n').map((m) => m.name)).toEqual(['Success']);
  });
});

describe('AmiParser legacy Response: Follows', () => {
  // Hand-made: every trace comes from Asterisk 22, which answers Command with Output: lines; Asterisk ≤ 13
  // sent the raw CLI text and --END COMMAND--. This is that shape (LF line ends inside the output).
  const legacy =
    'Response: Follows\r\nPrivilege: Command\r\nActionID: cmd-1\r\n' +
    'Name/username              Host            Dyn Forcerport\n' +
    'Status: looks like a header\n' +
    '\n' +
    '101/101                    (Unspecified)   D   N\n' +
    '--END COMMAND--\r\n\r\n';

  test('output lines (even `Key: value` or empty ones) go to lists.Output, in any chunking', () => {
    const stream = Buffer.from(legacy + 'Event: FullyBooted\r\nPrivilege: system,all\r\n\r\n');
    const expected = [
      'Name/username              Host            Dyn Forcerport',
      'Status: looks like a header',
      '',
      '101/101                    (Unspecified)   D   N',
    ];
    for (const chunks of [[stream], [...fixedChunks(stream, 1)], [...randomChunks(stream, 9, 20)]]) {
      const { messages, errors } = parse(chunks);
      expect(errors).toEqual([]);
      expect(messages.map((m) => m.name)).toEqual(['Follows', 'FullyBooted']);
      expect(messages[0]?.kind).toBe('response');
      expect(messages[0]?.fields).toEqual({ Response: 'Follows', Privilege: 'Command', ActionID: 'cmd-1', Output: expected[0] });
      expect(messages[0]?.lists['Output']).toEqual(expected);
    }
  });

  test('a blank line inside the output does not end the answer; output glued to the end marker is kept', () => {
    const raw = 'Response: Follows\r\nActionID: 2\r\nfirst\r\n\r\nsecond--END COMMAND--\r\n\r\n';
    const { messages } = parse([raw]);
    expect(messages).toHaveLength(1);
    expect(messages[0]?.lists['Output']).toEqual(['first', '', 'second']);
  });
});

describe('AmiParser on malformed input', () => {
  test('junk frames are reported as E_AMI_PROTOCOL and parsing goes on with the next frame', () => {
    const junk = Buffer.from([0x00, 0xff, 0xfe, 0x13, 0x37, 0x0a, 0x00]);
    const stream = Buffer.concat([
      Buffer.from('Event: A\r\nX: 1\r\n\r\n'),
      junk,
      Buffer.from('\r\n\r\nNoType: here\r\nOther: 2\r\n\r\nEvent: B\r\nJunk line without colon\r\nY: 2\r\n\r\nEvent: C\r\n\r\n'),
    ]);
    for (const chunks of [[stream], [...fixedChunks(stream, 1)]]) {
      const { messages, errors } = parse(chunks);
      expect(messages.map((m) => m.name)).toEqual(['A', 'B', 'C']);
      expect(messages[1]?.fields).toEqual({ Event: 'B', Y: '2' });
      expect(errors.map((e) => e.code)).toEqual(['E_AMI_PROTOCOL', 'E_AMI_PROTOCOL', 'E_AMI_PROTOCOL']);
      expect(errors[0]?.message).toMatch(/without an Event or Response header/);
      expect(errors[1]?.message).toContain('NoType: here');
      expect(errors[2]?.message).toMatch(/event B: line without "Key: value" ignored: "Junk line without colon"/);
    }
  });

  test('an absurdly long frame is reported once, skipped up to the next blank line, and parsing resumes', () => {
    const huge = 'Event: Huge\r\n' + 'Filler: ' + 'x'.repeat(5000) + '\r\n';
    const stream = Buffer.from(`Event: Before\r\n\r\n${huge}\r\nEvent: After\r\nZ: 1\r\n\r\n`);
    for (const chunks of [[stream], [...fixedChunks(stream, 1)], [...randomChunks(stream, 5, 700)]]) {
      const { messages, errors } = parse(chunks, 1000);
      expect(messages.map((m) => m.name)).toEqual(['Before', 'After']);
      expect(errors).toHaveLength(1);
      expect(errors[0]?.code).toBe('E_AMI_PROTOCOL');
      expect(errors[0]?.message).toMatch(/frame longer than 1000 characters .*"Event: Huge/);
    }
  });

  test('empty frames and stray CRLFs between frames are ignored silently', () => {
    const { messages, errors } = parse(['\r\n\r\nEvent: A\r\n\r\n\r\n\r\n\r\nEvent: B\r\n\r\n']);
    expect(messages.map((m) => m.name)).toEqual(['A', 'B']);
    expect(errors).toEqual([]);
  });
});
