/**
 * Seeded AMI frame mutations for the fuzz tests: each takes a real frame (`Key: value\r\n…\r\n\r\n`) and returns
 * the chunks to write to the socket (a frame may be split across several writes).
 */

/** mulberry32: a small seeded PRNG, so a failing run can be repeated with its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)]!;
const int = (r: () => number, max: number) => Math.floor(r() * max);

function randomText(r: () => number, length: number): string {
  const alphabets = ['0123456789', 'abcXYZ-_./:;@', ' \t', 'Ωжж日本🙂', '\u0000\u0007\u001b\u007f', '${}%s%n\\"\'<>'];
  let s = '';
  for (let i = 0; i < length; i++) s += pick(r, pick(r, alphabets).split(''));
  return s;
}

const lines = (frame: string) => frame.slice(0, -4).split('\r\n');
const join = (ls: string[]) => ls.join('\r\n') + '\r\n\r\n';

const MUTATIONS: Record<string, (frame: string, r: () => number) => string | Buffer> = {
  intact: (f) => f,
  truncated: (f) => f.slice(0, int(r0, f.length)),
  duplicateKeys: (f, r) => {
    const ls = lines(f);
    const i = int(r, ls.length);
    ls.splice(i, 0, ...Array.from({ length: 1 + int(r, 3) }, () => ls[i]!.replace(/: .*/, `: ${randomText(r, 8)}`)));
    return join(ls);
  },
  binaryJunk: (_f, r) => {
    const junk = Buffer.alloc(1 + int(r, 2000));
    for (let i = 0; i < junk.length; i++) junk[i] = int(r, 256);
    return r() < 0.7 ? Buffer.concat([junk, Buffer.from('\r\n\r\n')]) : junk;
  },
  hugeValue: (f, r) => {
    const ls = lines(f);
    const i = 1 + int(r, ls.length - 1);
    // Mostly large but legal; one in ten beyond the parser's 1 MiB frame limit.
    const size = r() < 0.1 ? 1_100_000 : 10_000 + int(r, 100_000);
    ls[i] = `${(ls[i] ?? 'X: ').split(':')[0]}: ${'A'.repeat(size)}`;
    return join(ls);
  },
  missingFields: (f, r) => join(lines(f).filter((_l, i) => i === 0 ? r() < 0.7 : r() < 0.5)),
  randomValues: (f, r) => join(lines(f).map((l, i) => (i > 0 && r() < 0.5 ? l.replace(/: .*/, `: ${randomText(r, int(r, 40))}`) : l))),
  noColon: (f, r) => join(lines(f).map((l) => (r() < 0.3 ? l.replace(': ', ' ') : l))),
  bareLf: (f) => f.replace(/\r\n/g, '\n') + '\r\n\r\n',
  strayCr: (f, r) => join(lines(f).map((l) => (r() < 0.3 ? l.replace(': ', ':\r ') : l))),
  randomEvent: (_f, r) => join([`Event: ${pick(r, ['Newchannel', 'Hangup', 'DialBegin', 'DialEnd', 'BridgeEnter', 'BridgeLeave', 'VarSet', 'Newstate', 'AgentCalled', 'Shutdown', 'FullyBooted', randomText(r, 12)])}`,
    ...Array.from({ length: int(r, 12) }, () => `${pick(r, ['Channel', 'Uniqueid', 'Linkedid', 'CallerIDNum', 'Exten', 'DialStatus', 'BridgeUniqueid', 'Variable', 'Value', 'Cause', 'Timestamp', 'DestChannel', 'ChannelState', 'Context'])}: ${r() < 0.5 ? randomText(r, int(r, 30)) : `${int(r, 2e9)}.${int(r, 999)}`}`)]),
  responseFrames: (_f, r) => join([`Response: ${pick(r, ['Success', 'Error', 'Follows', 'Goodbye'])}`, `ActionID: ${randomText(r, 10)}`, `Message: ${randomText(r, 20)}`]),
  onlyBlankLines: () => '\r\n\r\n\r\n\r\n',
};
let r0: () => number = Math.random;
const KINDS = Object.keys(MUTATIONS);

/** One mutated frame (kind chosen at random) as 1–4 chunks cut at random places (CR/LF pairs included). */
export function mutateFrame(frame: string, r: () => number): { kind: string; chunks: Array<string | Buffer> } {
  r0 = r;
  const kind = pick(r, KINDS);
  const data = MUTATIONS[kind]!(frame, r);
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const pieces = int(r, 4);
  const cuts = Array.from({ length: pieces }, () => int(r, buf.length)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts, buf.length]) {
    if (c > at) chunks.push(buf.subarray(at, c));
    at = c;
  }
  return { kind, chunks };
}
