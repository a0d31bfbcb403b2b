/**
 * One PBX: its AMI connection, its call machine and its calls' state. AMI events are mapped to call events,
 * stepped through the machine, and every batch of events (all that one socket read delivered) is committed in
 * ONE SQLite transaction together with the Bitrix24 requests it produced — so after a crash the state and the
 * outbox always agree: nothing is lost, nothing is queued twice.
 *
 * After every (re)connect the session asks Asterisk for its live channels (CoreShowChannels) and feeds them to
 * the machine as a snapshot: calls that ended while we were away are finished with what we know, calls we join
 * mid-way are adopted.
 */
import type { AmiClient } from '../ami/client.ts';
import type { AmiMessage } from '../ami/message.ts';
import { snapshotFromCoreShowChannels, toCallEvent } from '../ami/to-call-event.ts';
import { coalesceCards } from '../calls/coalesce.ts';
import type { CallEvent } from '../calls/events.ts';
import type { Intent } from '../calls/intents.ts';
import { CallMachine, type MachineConfig } from '../calls/machine.ts';
import type { Call, World } from '../calls/model.ts';
import type { Logger } from '../log/logger.ts';
import type { Outbox } from '../outbox/outbox.ts';
import type { Store } from '../store/db.ts';
import { callFacts } from './call-facts.ts';
import { opKey, type IntentOp } from './dispatcher.ts';

interface PersistedCall {
  call: Call;
  /** Intents queued so far for this call (numbers the outbox idempotency keys). */
  emitted: number;
}

export interface PbxSessionOptions {
  name: string;
  machine: MachineConfig;
  store: Store;
  outbox: Outbox;
  log: Logger;
  /** Absent for replay: events are pushed with `feed`. */
  ami?: AmiClient;
  /** Observers (the demo prints intents; replay collects them). */
  onIntents?: (intents: Intent[], calls: Record<string, Call>) => void;
}

export class PbxSession {
  readonly name: string;
  readonly #machine: CallMachine;
  readonly #store: Store;
  readonly #outbox: Outbox;
  readonly #log: Logger;
  readonly #ami: AmiClient | undefined;
  readonly #onIntents: PbxSessionOptions['onIntents'];
  #world: World;
  #emitted = new Map<string, number>();
  #pending: CallEvent[] = [];
  #flushScheduled = false;
  #listItems: AmiMessage[] = [];
  #stopped = false;

  constructor(o: PbxSessionOptions) {
    this.name = o.name;
    this.#machine = new CallMachine(o.machine);
    this.#store = o.store;
    this.#outbox = o.outbox;
    this.#log = o.log.child({ component: 'calls', pbx: o.name });
    this.#ami = o.ami;
    this.#onIntents = o.onIntents;
    this.#world = this.#restore();
  }

  /** Calls in progress (for status and tests). */
  get activeCalls(): number {
    return Object.keys(this.#world.calls).length;
  }

  start(): void {
    const ami = this.#ami;
    if (!ami) return;
    ami.on('event', (msg) => this.#onAmi(msg));
    ami.on('connected', (info) => {
      this.#log.info(`AMI connected (${info.banner}${info.reconnects ? `, reconnect #${info.reconnects}` : ''}): reconciling live channels`);
      void this.reconcile();
    });
    ami.on('disconnected', (info) => this.#log.warn(`AMI disconnected: ${info.reason}`));
    ami.on('error', (err) => this.#log.error(err.message, { code: err.code }));
    ami.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.flush();
    await this.#ami?.stop();
  }

  /** Asks Asterisk which channels are up and feeds the answer to the machine as a snapshot. */
  async reconcile(): Promise<void> {
    if (!this.#ami) return;
    try {
      const res = await this.#ami.action('CoreShowChannels');
      this.feed(snapshotFromCoreShowChannels(res.events, Date.now()));
      this.flush();
    } catch (err) {
      this.#log.error(`reconciliation failed: ${(err as Error).message}`, { code: 'E_AMI_ACTION' });
    }
  }

  #onAmi(msg: AmiMessage): void {
    const event = toCallEvent(msg);
    if (!event) return;
    this.feed(event);
    // Everything one socket read delivered is committed together (and queue rings merge into one card).
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  feed(event: CallEvent): void {
    this.#pending.push(event);
  }

  /** Steps the pending events and commits state + requests in one transaction. */
  flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.length === 0) return;
    const events = this.#pending;
    this.#pending = [];
    const intents: Intent[] = [];
    const touched: Record<string, Call> = {};
    const ended = new Set<string>();
    for (const event of events) {
      try {
        const r = this.#machine.step(this.#world, event);
        this.#world = r.world;
        intents.push(...r.intents);
        Object.assign(touched, r.calls);
        for (const key of r.ended) ended.add(key);
      } catch (err) {
        // A bug must not stop the PBX's other calls: log the event that triggered it and go on.
        this.#log.error(`call machine failed on ${event.type}: ${(err as Error).stack ?? String(err)}`);
      }
    }
    const merged = coalesceCards(intents);
    const now = Date.now();
    const ops = merged.map((intent) => {
      const seq = (this.#emitted.get(intent.callKey) ?? 0) + 1;
      this.#emitted.set(intent.callKey, seq);
      const call = touched[intent.callKey]!;
      const payload: IntentOp = { pbx: this.name, intent, facts: callFacts(this.name, call, intent), queuedAt: now };
      return { idemKey: opKey(this.name, intent, seq), group: `${this.name}/${intent.callKey}`, kind: intent.kind, payload };
    });
    this.#store.transaction(() => {
      for (const [key, call] of Object.entries(touched)) {
        if (ended.has(key)) {
          this.#store.deleteCall(this.name, key);
          this.#emitted.delete(key);
        } else {
          const persisted: PersistedCall = { call, emitted: this.#emitted.get(key) ?? 0 };
          this.#store.saveCall(this.name, key, persisted);
        }
      }
      this.#store.setKv(`bridges/${this.name}`, this.#world.bridges);
      this.#store.setKv(`click-to-call-done/${this.name}`, this.#world.clickToCallDone);
      if (ops.length > 0) this.#outbox.enqueue(ops);
    });
    for (const op of ops) this.#logIntent(op.payload);
    if (merged.length > 0) this.#onIntents?.(merged, touched);
    if (!this.#stopped && ops.length > 0) this.#outbox.kick();
  }

  #logIntent({ intent }: IntentOp): void {
    const what = intent.kind === 'register'
      ? `${intent.direction} call ${intent.externalNumber || '(withheld)'}${intent.did ? ` on ${intent.did}` : ''} → register for ${intent.extension ?? 'default user'} (${intent.reason})`
      : intent.kind === 'show' || intent.kind === 'hide' ? `${intent.kind} card for ${intent.extensions.join(', ')}`
        : intent.kind === 'finish' ? `finish ${intent.status}${intent.answered ? `, talk ${intent.durationSec} s` : ''} for ${intent.extension ?? 'default user'}`
          : intent.kind === 'attachRecord' ? `attach recording ${intent.paths[0] ?? ''}`
            : `call ended (${intent.answered ? 'answered' : 'missed'})`;
    this.#log.info(`${intent.regId}: ${what}`, { callId: intent.callKey });
  }

  /** Rebuilds the machine's world from the calls persisted before a restart. */
  #restore(): World {
    const world = this.#machine.initial();
    for (const row of this.#store.loadActiveCalls(this.name)) {
      const { call, emitted } = row.state as PersistedCall;
      world.calls[call.key] = call;
      for (const id of Object.keys(call.channels)) world.channelCall[id] = call.key;
      for (const l of call.linkedIds) world.linkedCall[l] = call.key;
      this.#emitted.set(call.key, emitted);
    }
    world.bridges = this.#store.getKv<World['bridges']>(`bridges/${this.name}`) ?? {};
    world.clickToCallDone = this.#store.getKv<World['clickToCallDone']>(`click-to-call-done/${this.name}`) ?? {};
    const n = Object.keys(world.calls).length;
    if (n > 0) this.#log.info(`restored ${n} call(s) in progress from the state database`);
    return world;
  }
}
