/**
 * Runs a recorded trace through the real AMI parser, the AMI → call-event adapter and the call machine, with each
 * message dated by its recorded `t` (as Asterisk's Timestamp header would), and returns every intent produced.
 * CoreShowChannels answers in the trace (mid-call connect) become the reconciliation snapshot, as in the daemon.
 */
import { readFileSync } from 'node:fs';
import { AmiParser } from '../../src/ami/parser.ts';
import type { AmiMessage } from '../../src/ami/message.ts';
import { snapshotFromCoreShowChannels, toCallEvent } from '../../src/ami/to-call-event.ts';
import { CallMachine, type MachineConfig } from '../../src/calls/machine.ts';
import type { CallEvent } from '../../src/calls/events.ts';
import type { Intent } from '../../src/calls/intents.ts';
import type { World } from '../../src/calls/model.ts';

export const TRACE_EPOCH_MS = Date.UTC(2026, 10, 22, 9, 0, 0);

export interface TraceHeader {
  scenario: string;
  expected: Record<string, unknown> & { calls?: Array<Record<string, unknown>> };
}

export function traceHeader(path: string): TraceHeader {
  return JSON.parse(readFileSync(path, 'utf8').split('\n', 1)[0]!) as TraceHeader;
}

export const LAB_CONFIG: MachineConfig = { extensionPattern: '^\\d{2,5}$', trunks: ['provider'] };

/** A trace's call events (what toCallEvent makes of its `in` messages), dated by their recorded `t`. */
export function traceCallEvents(path: string): CallEvent[] {
  const out: CallEvent[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n').slice(1).filter(Boolean)) {
    const rec = JSON.parse(line) as { t: number; dir: string; raw: string };
    if (rec.dir !== 'in') continue;
    for (const m of new AmiParser().push(rec.raw)) {
      const e = toCallEvent({ ...m, receivedAt: TRACE_EPOCH_MS + Math.round(rec.t) });
      if (e) out.push(e);
    }
  }
  return out;
}

/** Steps `events` through a fresh machine: every intent, and the machine and world it ended with. */
export function stepAll(events: CallEvent[], config: MachineConfig = LAB_CONFIG): { intents: Intent[]; machine: CallMachine; world: World } {
  const machine = new CallMachine(config);
  let world = machine.initial();
  const intents: Intent[] = [];
  for (const e of events) {
    const r = machine.step(world, e);
    world = r.world;
    intents.push(...r.intents);
  }
  return { intents, machine, world };
}

export function runTrace(path: string, config: MachineConfig = LAB_CONFIG): Intent[] {
  const machine = new CallMachine(config);
  let world = machine.initial();
  const intents: Intent[] = [];
  const listItems: AmiMessage[] = [];
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean).slice(1);
  for (const line of lines) {
    const rec = JSON.parse(line) as { t: number; dir: string; raw: string };
    if (rec.dir !== 'in') continue;
    const parser = new AmiParser();
    for (const parsed of parser.push(rec.raw)) {
      const msg: AmiMessage = { ...parsed, receivedAt: TRACE_EPOCH_MS + Math.round(rec.t) };
      if (msg.name === 'CoreShowChannel') listItems.push(msg);
      const event = msg.name === 'CoreShowChannelsComplete'
        ? snapshotFromCoreShowChannels(listItems.splice(0), msg.receivedAt)
        : toCallEvent(msg);
      if (!event) continue;
      const result = machine.step(world, event);
      world = result.world;
      intents.push(...result.intents);
    }
  }
  return intents;
}
