/**
 * Reading `ami-trace/1` recordings (test/fixtures/ami/README.md) and the small text helpers the AMI simulator
 * needs. Deliberately independent of src/ami: the fake must not share parsing bugs with the code it tests.
 */
import { readFileSync } from 'node:fs';

export interface TraceHeader {
  format: string;
  ami_banner: string;
  scenario: string;
  [key: string]: unknown;
}

export interface TraceLine {
  /** ms since the recorder opened its (first) TCP connection. */
  t: number;
  dir: 'in' | 'out';
  raw: string;
  /** 2 for the second session of asterisk-restart; absent (session 1) everywhere else. */
  session?: number;
}

export interface Trace {
  path: string;
  header: TraceHeader;
  lines: TraceLine[];
}

export function readTrace(path: string): Trace {
  const text = readFileSync(path, 'utf8');
  const rows = text.split('\n').filter((row) => row.trim() !== '');
  const [first, ...rest] = rows;
  if (first === undefined) throw new Error(`${path}: empty trace`);
  const header = JSON.parse(first) as TraceHeader;
  if (header.format !== 'ami-trace/1') throw new Error(`${path}: format ${String(header.format)} is not ami-trace/1`);
  const lines = rest.map((row, i) => {
    const line = JSON.parse(row) as TraceLine;
    if (typeof line.t !== 'number' || (line.dir !== 'in' && line.dir !== 'out') || typeof line.raw !== 'string') {
      throw new Error(`${path}:${i + 2}: not a trace line`);
    }
    return line;
  });
  return { path, header, lines };
}

/** The lines of every session, in order (session 1 first). */
export function traceSessions(trace: Trace): TraceLine[][] {
  const sessions = new Map<number, TraceLine[]>();
  for (const line of trace.lines) {
    const n = line.session ?? 1;
    let list = sessions.get(n);
    if (!list) sessions.set(n, (list = []));
    list.push(line);
  }
  return [...sessions.keys()].sort((a, b) => a - b).map((n) => sessions.get(n) ?? []);
}

/** `Key: value` header lines of one raw frame (first value per key; keys as sent). */
export function frameFields(raw: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of raw.split('\r\n')) {
    const at = line.indexOf(': ');
    if (at <= 0) continue;
    const key = line.slice(0, at);
    if (!(key in fields)) fields[key] = line.slice(at + 2);
  }
  return fields;
}

/** The value of the first `key:` line of a raw frame, or undefined. */
export function frameField(raw: string, key: string): string | undefined {
  const start = raw.startsWith(`${key}: `) ? 0 : raw.indexOf(`\r\n${key}: `);
  if (start === -1) return undefined;
  const from = start === 0 ? key.length + 2 : start + key.length + 4;
  const end = raw.indexOf('\r\n', from);
  return raw.slice(from, end === -1 ? raw.length : end);
}

/** Replaces the value of the first `key:` line (the frame must have it). */
export function replaceField(raw: string, key: string, value: string): string {
  const old = frameField(raw, key);
  if (old === undefined) return raw;
  const needle = raw.startsWith(`${key}: `) ? `${key}: ${old}\r\n` : `\r\n${key}: ${old}\r\n`;
  const replacement = raw.startsWith(`${key}: `) ? `${key}: ${value}\r\n` : `\r\n${key}: ${value}\r\n`;
  return raw.replace(needle, replacement);
}

// Keys whose values look like uniqueids but are clocks: never rewritten.
const CLOCK_KEYS = new Set(['Timestamp', 'SentNTP', 'EventTV', 'EventTime']);
const UNIQUEID = /\b(\d{10})\.(\d+)\b/g;
const CHANNEL_SUFFIX = /(\/[^\s;,&"()]*-)([0-9a-f]{8})(?=[;,&"()\s]|$)/g;
const BRIDGE_UUID = /\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)([0-9a-f]{12})\b/g;
const UNIQUEID_OFFSET = 1_000_000;
const CHANNEL_OFFSET = 0x100000;

/**
 * Rewrites one raw frame for copy `copy` (≥ 1) of a trace so that N copies can run side by side as distinct
 * calls: uniqueids/linkedids `1795326622.5` → `1795326622.<5 + copy·1e6>` (recording paths follow, they embed
 * the uniqueid), channel suffixes `-0000002a` → `-0010002a` (+ copy·0x100000) and bridge UUIDs get the copy
 * number in their last group. Copy 0 stays as recorded.
 */
export function rewriteIdentities(raw: string, copy: number): string {
  if (copy === 0) return raw;
  const lines = raw.split('\r\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const at = line.indexOf(': ');
    if (at <= 0 || CLOCK_KEYS.has(line.slice(0, at))) continue;
    const value = line
      .slice(at + 2)
      .replace(UNIQUEID, (_m, sec: string, seq: string) => `${sec}.${Number(seq) + copy * UNIQUEID_OFFSET}`)
      .replace(CHANNEL_SUFFIX, (_m, head: string, hex: string) => head + (parseInt(hex, 16) + copy * CHANNEL_OFFSET).toString(16).padStart(8, '0'))
      .replace(BRIDGE_UUID, (_m, head: string, last: string) => head + copy.toString(16).padStart(4, '0') + last.slice(4));
    lines[i] = line.slice(0, at + 2) + value;
  }
  return lines.join('\r\n');
}
