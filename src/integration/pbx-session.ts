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
import { snapshotFromCoreShowChannels, STATUS_VARIABLES, toCallEvent, varSetsFromStatus } from '../ami/to-call-event.ts';
import { coalesceCards } from '../calls/coalesce.ts';
import type { CallEvent, SnapshotEvent, VarSetEvent } from '../calls/events.ts';
import type { Intent } from '../calls/intents.ts';
import { CallMachine, type MachineConfig } from '../calls/machine.ts';
import { clickSettled, type Call, type World } from '../calls/model.ts';
import type { Logger } from '../log/logger.ts';
import type { Outbox } from '../outbox/outbox.ts';
import type { Store } from '../store/db.ts';
import { callFacts } from './call-facts.ts';
import { opKey, type IntentOp } from './dispatcher.ts';

/** How often time is fed to the machine while click-to-call Originates await their outcome. */
const CLICK_TICK_MS = 1000;
/** How long past its deadline a click waits for Asterisk to be followed again before it is given up anyway. */
const CLICK_OVERDUE_MAX_MS = 5 * 60_000;
/** How long a carried event is worth feeding again. */
const CARRIED_MAX_AGE_MS = 10 * 60_000;
/** Events that come from Bitrix24, not from Asterisk: a reconciliation cannot recover them, so they are kept. */
const NOT_FROM_ASTERISK = new Set<CallEvent['type']>(['clickToCall', 'clickToCallFailed', 'clickToCallStarted']);

interface ReconcileStatus {
  actionId: string;
  vars: Map<string, VarSetEvent[]>;
  done: boolean;
  /** PbxSession's connection counter when it was sent. */
  connection: number;
}

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
  /** The state in memory is ahead of the database and could not be reloaded (see DaemonOptions.onFatal). */
  onFatal?: (err: Error) => void;
}

export class PbxSession {
  readonly name: string;
  readonly #machine: CallMachine;
  readonly #store: Store;
  readonly #outbox: Outbox;
  readonly #log: Logger;
  readonly #ami: AmiClient | undefined;
  readonly #onIntents: PbxSessionOptions['onIntents'];
  readonly #onFatal: PbxSessionOptions['onFatal'];
  #world: World;
  #emitted = new Map<string, number>();
  #pending: CallEvent[] = [];
  #flushScheduled = false;
  #listItems: AmiMessage[] = [];
  /** The CoreShowChannels being answered: its ActionID, the channels we knew when it was sent, its Status. */
  #reconciling: { actionId: string; knownBefore: string[]; status: ReconcileStatus } | undefined;
  #reconcileTimer: NodeJS.Timeout | undefined;
  /**
   * Reconciliations' `Status` answers (with Variables) being collected, by ActionID: the facts per channel
   * (recording, DID, click-to-call CALL_ID), handed to the machine with the snapshot — before anything it adopts
   * is registered. Several can be in flight (a retry while one is held).
   */
  readonly #statuses = new Map<string, ReconcileStatus>();
  /** A snapshot waiting for its Status answer; events read meanwhile wait behind it, in stream order. */
  #heldSnapshot: { snapshot: SnapshotEvent; status: ReconcileStatus } | undefined;
  #held: CallEvent[] = [];
  /** Counts connections and disconnections: a reconciliation counts only for the connection it was made on. */
  #connection = 0;
  /** Clicks expire only while we follow Asterisk: connected and reconciled since connecting. */
  #reconciled = false;
  /** The world in memory is ahead of the database and could not be reloaded: nothing more may be saved. */
  #poisoned = false;
  /**
   * Bitrix24-side events (clicks) of a batch that could not be saved: Asterisk can repeat its own events, not
   * these. They are fed again at the head of the next batch (their call is usually among the saved ones), and
   * once more after the next snapshot (for a call only the snapshot brings back). Feeding them twice is harmless.
   */
  #carriedNext: CallEvent[] = [];
  #carriedAfterSnapshot: CallEvent[] = [];
  #tickTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(o: PbxSessionOptions) {
    this.name = o.name;
    this.#machine = new CallMachine(o.machine);
    this.#store = o.store;
    this.#outbox = o.outbox;
    this.#log = o.log.child({ component: 'calls', pbx: o.name });
    this.#ami = o.ami;
    this.#onIntents = o.onIntents;
    this.#onFatal = o.onFatal;
    const restored = this.#restore();
    this.#world = restored.world;
    this.#emitted = restored.emitted;
  }

  /** Calls in progress (for status and tests). */
  get activeCalls(): number {
    return Object.keys(this.#world.calls).length;
  }

  /** The outbox groups of the calls in progress (never pruned, however long a call lasts). */
  activeGroups(): string[] {
    return Object.keys(this.#world.calls).map((key) => `${this.name}/${key}`);
  }

  /** True when this CALL_ID's click is pending, in progress or finished (a redelivered event must not ring again). */
  knowsClick(bitrixCallId: string): boolean {
    return this.#world.clickPending[bitrixCallId] !== undefined || clickSettled(this.#world, bitrixCallId);
  }

  start(): void {
    const ami = this.#ami;
    if (!ami) return;
    ami.on('event', (msg) => this.#onAmi(msg));
    ami.on('connected', (info) => {
      this.#log.info(`AMI connected (${info.banner}${info.reconnects ? `, reconnect #${info.reconnects}` : ''}): reconciling live channels`);
      this.#connection++;
      this.#reconciled = false;
      clearTimeout(this.#reconcileTimer); // a retry for the previous connection is moot
      void this.reconcile();
    });
    ami.on('disconnected', (info) => {
      this.#connection++;
      this.#reconciled = false;
      this.#log.warn(`AMI disconnected: ${info.reason}`);
    });
    ami.on('error', (err) => this.#log.error(err.message, { code: err.code }));
    ami.start();
    this.#tickTimer = setInterval(() => {
      const now = Date.now();
      const due = Object.values(this.#world.clickPending).map((p) => p.deadline).filter((d) => d <= now);
      if (due.length === 0) return;
      // While Asterisk is out of sight a click's call may be up: its deadline waits for the reconciliation —
      // but not forever (an AMI user that may not list channels, an Asterisk that stays away).
      const following = this.#reconciled && !this.#heldSnapshot;
      if (!following && Math.min(...due) > now - CLICK_OVERDUE_MAX_MS) return;
      // Not following: only the clicks that long overdue are given up.
      this.feed({ type: 'tick', at: following ? now : now - CLICK_OVERDUE_MAX_MS });
      this.flush();
    }, CLICK_TICK_MS);
    this.#tickTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#reconcileTimer);
    clearInterval(this.#tickTimer);
    if (this.#heldSnapshot) {
      // Its variables may be incomplete: the next start reconciles anew. Clicks are saved now.
      this.#dropHeldSnapshot();
      this.#pending.push(...this.#carriedAfterSnapshot.splice(0));
    }
    this.flush();
    await this.#ami?.stop();
  }

  /**
   * Asks Asterisk which channels are up (CoreShowChannels), then what their variables say (Status). The list is
   * applied where it stands in the event stream (its items are read in order with the other events), and only
   * channels we knew when asking can be declared ended: one created meanwhile may be missing from the list.
   * Status is answered after the list, so the snapshot — and every event read after it — waits for that answer
   * (one round trip): a variable set meanwhile reaches the machine after the snapshot made its channel known.
   * A failure is retried.
   */
  async reconcile(attempt = 0): Promise<void> {
    if (!this.#ami || this.#stopped || this.#poisoned) return;
    const knownBefore = Object.keys(this.#world.channelCall);
    const status: ReconcileStatus = { actionId: '', vars: new Map(), done: false, connection: this.#connection };
    const list = this.#ami.action('CoreShowChannels', {}, {
      onActionId: (actionId) => {
        this.#reconciling = { actionId, knownBefore, status };
        this.#listItems = [];
      },
    });
    void this.#ami.action('Status', { Variables: STATUS_VARIABLES.join(',') }, {
      onActionId: (id) => {
        status.actionId = id;
        this.#statuses.set(id, status);
      },
    })
      .catch((err: Error) => this.#log.warn(`could not read the channels' variables (recordings and clicks of calls joined mid-way may be missed): ${err.message}`))
      .finally(() => {
        status.done = true;
        this.#statuses.delete(status.actionId);
        if (this.#heldSnapshot?.status !== status) return;
        // On a connection that is gone the snapshot is stale and its variables incomplete: the next connection's
        // reconciliation replaces it. Only what Bitrix24 said is kept for then.
        if (status.connection !== this.#connection) this.#dropHeldSnapshot();
        else this.#releaseSnapshot();
      });
    try {
      await list;
    } catch (err) {
      if (this.#reconciling?.status === status) this.#reconciling = undefined;
      const delay = Math.min(30_000, 1000 * 2 ** attempt);
      this.#log.error(`reconciliation failed, retrying in ${delay} ms: ${(err as Error).message}`, { code: 'E_AMI_ACTION' });
      clearTimeout(this.#reconcileTimer);
      this.#reconcileTimer = setTimeout(() => void this.reconcile(attempt + 1), delay);
      this.#reconcileTimer.unref();
    }
  }

  #onAmi(msg: AmiMessage): void {
    const st = this.#statuses.size > 0 ? this.#statuses.get(msg.fields['ActionID'] ?? '') : undefined;
    if (st) {
      if (msg.name === 'Status') {
        for (const v of varSetsFromStatus(msg)) {
          const list = st.vars.get(v.channel.channelId);
          if (list) list.push(v);
          else st.vars.set(v.channel.channelId, [v]);
        }
      }
      return;
    }
    const r = this.#reconciling;
    if (r && msg.fields['ActionID'] === r.actionId) {
      if (msg.name === 'CoreShowChannel') this.#listItems.push(msg);
      if (msg.name === 'CoreShowChannelsComplete') {
        this.#reconciling = undefined;
        const snapshot: SnapshotEvent = { ...snapshotFromCoreShowChannels(this.#listItems, Date.now()), knownBefore: r.knownBefore };
        this.#listItems = [];
        if (!r.status.done) {
          if (this.#heldSnapshot) this.#releaseSnapshot(); // an older one still waiting: it goes first, as read
          this.#heldSnapshot = { snapshot, status: r.status };
        } else {
          this.#feedSnapshot(snapshot, r.status);
        }
      }
      return;
    }
    const event = toCallEvent(msg);
    if (!event) return;
    this.feed(event);
    this.#scheduleFlush();
  }

  /** The snapshot, with the variables its Status read, then what only Bitrix24 could repeat. */
  #feedSnapshot(snapshot: SnapshotEvent, status: ReconcileStatus): void {
    this.#pending.push({
      ...snapshot,
      channels: snapshot.channels.map((c) => {
        const found = status.vars.get(c.channelId);
        return found ? { ...c, variables: found.map((v) => ({ name: v.name, value: v.value })) } : c;
      }),
    });
    // Older ones were long settled one way or the other (a click's deadline is minutes at most).
    const now = Date.now();
    this.#pending.push(...this.#carriedAfterSnapshot.splice(0).filter((e) => now - e.at < CARRIED_MAX_AGE_MS));
    if (status.connection === this.#connection) this.#reconciled = true;
    this.#scheduleFlush();
  }

  /** A held snapshot that will not be applied: the AMI events behind it go too, clicks wait for the next one. */
  #dropHeldSnapshot(): void {
    this.#heldSnapshot = undefined;
    this.#carriedAfterSnapshot.push(...this.#held.splice(0).filter((e) => NOT_FROM_ASTERISK.has(e.type)));
  }

  /** The Status answer is complete (or failed): the held snapshot goes in, then the events that waited. */
  #releaseSnapshot(): void {
    const held = this.#heldSnapshot;
    if (!held) return;
    this.#heldSnapshot = undefined;
    this.#feedSnapshot(held.snapshot, held.status); // schedules the flush
    this.#pending.push(...this.#held.splice(0));
  }

  /** Everything one socket read delivered is committed together. */
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Queues an event for the next flush (behind a snapshot that waits for its Status, if there is one). */
  feed(event: CallEvent): void {
    if (this.#poisoned) return;
    // A click's start and failure come from Bitrix24, not from the stream: they need not wait (and a click must
    // be saved before its Originate is written).
    if (this.#heldSnapshot && event.type !== 'clickToCallStarted' && event.type !== 'clickToCallFailed') this.#held.push(event);
    else this.#pending.push(event);
  }

  /** Steps the pending events and commits state + requests in one transaction; false when it could not be saved. */
  flush(): boolean {
    this.#flushScheduled = false;
    if (this.#poisoned) return false;
    if (this.#pending.length === 0 && this.#carriedNext.length === 0) return true;
    const carried = this.#carriedNext.splice(0);
    const pending = this.#pending;
    this.#pending = [];
    // Carried events go first — or right after a snapshot in this batch, which is then their last chance.
    const snapAt = carried.length > 0 ? pending.findIndex((e) => e.type === 'snapshot') : -1;
    const events = carried.length === 0 ? pending
      : snapAt >= 0 ? [...pending.slice(0, snapAt + 1), ...carried, ...pending.slice(snapAt + 1)] : [...carried, ...pending];
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
    try {
      this.#store.transaction(() => {
        for (const [key, call] of Object.entries(touched)) {
          const live = this.#world.calls[key];
          if (ended.has(key) && !live) {
            this.#store.deleteCall(this.name, key);
          } else {
            const persisted: PersistedCall = { call: live ?? call, emitted: this.#emitted.get(key) ?? 0 };
            this.#store.saveCall(this.name, key, persisted);
          }
        }
        // recentHangups stays in memory: it guards a live reconnect, and writing thousands of entries per batch
        // would cost more than the rare race it covers across a restart.
        this.#store.setKv(`world/${this.name}`, {
          bridges: this.#world.bridges, clickToCallDone: this.#world.clickToCallDone, clickPending: this.#world.clickPending,
        });
        if (ops.length > 0) this.#outbox.enqueue(ops);
      });
    } catch (err) {
      // Nothing of this batch was committed: go back to the committed state and ask Asterisk what is up now.
      // What Bitrix24 told us (clicks) is not Asterisk's to repeat: it is fed again after that snapshot.
      this.#log.error(`could not save call state, reloading it and reconciling: ${(err as Error).message}`, { code: 'E_STORE' });
      this.#carriedNext = events.filter((e) => NOT_FROM_ASTERISK.has(e.type));
      this.#reconciled = false; // until the coming snapshot: a click's call may be among what was lost
      try {
        const restored = this.#restore();
        this.#world = restored.world;
        this.#emitted = restored.emitted;
      } catch (readErr) {
        // The machine changed the world in place: memory is now ahead of the database, and saving it later
        // would record a batch whose requests were never queued. Only a restart from the database is sound.
        this.#log.error(`could not reload call state either, restarting from what was saved: ${(readErr as Error).message}`, { code: 'E_STORE' });
        this.#poisoned = true;
        this.#pending = [];
        this.#carriedNext = [];
        this.#onFatal?.(readErr as Error);
        return false;
      }
      clearTimeout(this.#reconcileTimer);
      this.#reconcileTimer = setTimeout(() => void this.reconcile(), 1000);
      this.#reconcileTimer.unref();
      return false;
    }
    if (carried.length > 0 && snapAt < 0) this.#carriedAfterSnapshot.push(...carried);
    // Counters of ended calls are kept a while (bounded): a key seen again must not restart its numbering.
    if (this.#emitted.size > 50_000) for (const key of [...this.#emitted.keys()].slice(0, 10_000)) if (!this.#world.calls[key]) this.#emitted.delete(key);
    for (const op of ops) this.#logIntent(op.payload);
    if (merged.length > 0) this.#onIntents?.(merged, touched);
    if (!this.#stopped && ops.length > 0) this.#outbox.kick();
    return true;
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

  /** Rebuilds the machine's world (and the calls' request numbering) from what was persisted. */
  #restore(): { world: World; emitted: Map<string, number> } {
    const world = this.#machine.initial();
    const emitted = new Map<string, number>();
    for (const row of this.#store.loadActiveCalls(this.name)) {
      const { call, emitted: n } = row.state as PersistedCall;
      world.calls[call.key] = call;
      for (const id of Object.keys(call.channels)) world.channelCall[id] = call.key;
      for (const l of call.linkedIds) world.linkedCall[l] = call.key;
      emitted.set(call.key, n);
    }
    const saved = this.#store.getKv<Partial<Pick<World, 'bridges' | 'clickToCallDone' | 'clickPending'>>>(`world/${this.name}`);
    world.bridges = saved?.bridges ?? {};
    world.clickToCallDone = saved?.clickToCallDone ?? {};
    world.clickPending = saved?.clickPending ?? {};
    const n = Object.keys(world.calls).length;
    if (n > 0) this.#log.info(`restored ${n} call(s) in progress from the state database`);
    const clicks = Object.keys(world.clickPending).length;
    if (clicks > 0) this.#log.info(`restored ${clicks} click-to-call(s) awaiting Asterisk's answer`);
    return { world, emitted };
  }
}
