/**
 * The call state machine: `step(world, event) → { world, intents }`.
 *
 * Pure in the sense that matters for a telephony core: the result depends only on the state and the event —
 * no I/O, no clock (times come inside events), no timers, no randomness — so a recorded trace replays to the
 * same intents every time, in tests, in `replay`, and after a restart. For speed the machine updates the world it
 * is given and returns it: callers hand over the state and keep the returned one (the daemon persists the
 * touched calls after each step).
 *
 * Model (see model.ts): a call is one Linkedid; it holds channels and one conversation per party the call
 * reached (agents' extensions, or an external number it was forwarded to). Talk time is measured from bridge
 * topology: a conversation talks while its channel is connected — through bridges and Local channel pairs — to
 * the call's external party, so ringing, queueing and an agent's consult time are not talk time.
 */
import { ChannelClassifier, isWithheld, localPartnerName, numberFromDialString, type ClassifyConfig } from './channels.ts';
import type {
  BridgeEvent, CallEvent, ChannelRef, ClickToCallEvent, ClickToCallFailedEvent, DialBeginEvent, DialEndEvent, HangupEvent,
  SnapshotEvent, TransferEvent, VarSetEvent,
} from './events.ts';
import type { FinishStatus, Intent, RegisterIntent } from './intents.ts';
import type { Call, Channel, Conversation, Registration, World } from './model.ts';
import { clickSettled, emptyWorld } from './model.ts';
import { missedStatus } from './outcome.ts';

export interface MachineConfig extends ClassifyConfig {
  /** Register extension-to-extension calls too (default false). */
  registerInternal?: boolean;
  /** When agents see the call card: while their phone rings (default), only once they answer, or never. */
  showCard?: 'ringing' | 'answered' | 'never';
}

export interface StepResult {
  world: World;
  intents: Intent[];
  /** Keys of the calls this event touched (the daemon persists them). */
  touched: string[];
  /** Keys of calls that ended with this event (their state can be deleted once persisted intents are queued). */
  ended: string[];
  /** The touched calls' state after the event, ended ones included (for persistence and hook context). */
  calls: Record<string, Call>;
}

export class CallMachine {
  readonly #classifier: ChannelClassifier;
  readonly #registerInternal: boolean;
  readonly #showCard: 'ringing' | 'answered' | 'never';

  constructor(config: MachineConfig) {
    this.#classifier = new ChannelClassifier(config);
    this.#registerInternal = config.registerInternal ?? false;
    this.#showCard = config.showCard ?? 'ringing';
  }

  initial(): World {
    return emptyWorld();
  }

  step(world: World, event: CallEvent): StepResult {
    const run = new Step(world, this.#classifier, this.#registerInternal, this.#showCard);
    run.apply(event);
    const calls: Record<string, Call> = {};
    for (const key of run.touched) {
      const call = world.calls[key] ?? run.endedCalls.get(key);
      if (call) calls[key] = call;
    }
    return { world, intents: run.intents, touched: Object.keys(calls), ended: run.ended, calls };
  }
}

/** One application of one event. Holds the intents being produced; discarded afterwards. */
class Step {
  readonly intents: Intent[] = [];
  readonly touched = new Set<string>();
  readonly ended: string[] = [];
  readonly endedCalls = new Map<string, Call>();
  readonly #w: World;
  readonly #cls: ChannelClassifier;
  readonly #registerInternal: boolean;
  readonly #showCard: 'ringing' | 'answered' | 'never';

  constructor(world: World, cls: ChannelClassifier, registerInternal: boolean, showCard: 'ringing' | 'answered' | 'never') {
    this.#w = world;
    this.#cls = cls;
    this.#registerInternal = registerInternal;
    this.#showCard = showCard;
  }

  apply(e: CallEvent): void {
    switch (e.type) {
      case 'channelNew': {
        const hit = this.#channel(e.channel, e.at, true);
        if (hit) this.#onNewChannel(hit.call, hit.ch, e.channel);
        return;
      }
      case 'channelState':
      case 'channelSeen':
        this.#channel(e.channel, e.at, false);
        return;
      case 'varSet': {
        const hit = this.#channel(e.channel, e.at, false);
        if (hit) this.#applyVariable(hit.call, e.name, e.value);
        return;
      }
      case 'clickToCall': return this.#onClickToCall(e);
      case 'clickToCallFailed': return this.#onClickToCallFailed(e);
      case 'clickToCallStarted': {
        // Fed again after a failed save: a click already claimed or finished is not pending any more.
        if (clickSettled(this.#w, e.bitrixCallId)) return;
        const { bitrixUserId, number, extension, deadline, crmEntity } = e;
        this.#w.clickPending[e.bitrixCallId] = { bitrixUserId, number, extension, deadline, ...(crmEntity ? { crmEntity } : {}) };
        return;
      }
      case 'tick': return this.#expireClicks(e.at);
      case 'dialBegin': return this.#onDialBegin(e);
      case 'dialEnd': return this.#onDialEnd(e);
      case 'bridgeEnter':
      case 'bridgeLeave': return this.#onBridge(e);
      case 'hangup': return this.#onHangup(e);
      case 'transfer': return this.#onTransfer(e);
      case 'snapshot': return this.#onSnapshot(e);
    }
  }

  // ── channels and calls ─────────────────────────────────────────────────────────────────────────────────

  /**
   * Finds (or, when `create`, makes) the channel and its call, and follows a Linkedid change: a channel that
   * shows up with another call's Linkedid (pickup, park retrieval) moves to that call.
   */
  #channel(ref: ChannelRef, at: number, create: boolean): { call: Call; ch: Channel } | undefined {
    const w = this.#w;
    const key = w.channelCall[ref.channelId];
    if (key !== undefined) {
      let call = w.calls[key]!;
      const ch = call.channels[ref.channelId]!;
      const target = w.linkedCall[ref.linkedId];
      if (target === undefined) {
        w.linkedCall[ref.linkedId] = key;
        call.linkedIds.push(ref.linkedId);
      } else if (target !== key) {
        call = this.#move(ch, call, w.calls[target]!, at);
      }
      if (ref.callerNum !== undefined && ref.callerNum !== ch.callerNum) {
        ch.callerNum = ref.callerNum;
        // Caller ID that arrives after the channel (NewCallerid: analog lines, dialplans that set CALLERID(num)).
        if (call.direction === 'incoming' && call.anchorId === ch.id && call.registrations.length === 0) {
          call.externalNumber = ref.callerNum;
          call.withheld = isWithheld(ref.callerNum);
        }
      }
      call.lastEventAt = Math.max(call.lastEventAt ?? at, at);
      this.touched.add(call.key);
      return { call, ch };
    }
    if (!create) return undefined;
    // A late report (snapshot, stray event) about a channel that already hung up must not resurrect its call.
    if (this.#w.recentHangups[ref.channelId] !== undefined) return undefined;
    let callKey = w.linkedCall[ref.linkedId];
    if (callKey === undefined) {
      callKey = ref.linkedId;
      w.calls[callKey] = {
        key: callKey, linkedIds: [ref.linkedId], startedAt: at, withheld: false, channels: {}, conversations: {},
        registrations: [], recordings: [], transfers: [],
      };
      w.linkedCall[ref.linkedId] = callKey;
    }
    const call = w.calls[callKey]!;
    const { kind, endpoint } = this.#cls.classify(ref.name);
    const ch: Channel = { id: ref.channelId, name: ref.name, kind, endpoint, createdAt: at };
    if (ref.callerNum !== undefined) ch.callerNum = ref.callerNum;
    if (ref.exten !== undefined) ch.exten = ref.exten;
    call.channels[ch.id] = ch;
    w.channelCall[ch.id] = callKey;
    if (ref.channelId === ref.linkedId && call.originId === undefined) call.originId = ch.id;
    call.lastEventAt = Math.max(call.lastEventAt ?? at, at);
    this.touched.add(callKey);
    return { call, ch };
  }

  #onNewChannel(call: Call, ch: Channel, ref: ChannelRef): void {
    if (call.originId !== ch.id || call.direction) return;
    if (ch.kind === 'trunk') this.#becomeIncoming(call, ch, ref.exten);
  }

  /** A channel variable that carries a call fact (VarSet live, or Status with a reconnect's snapshot). */
  #applyVariable(call: Call, name: VarSetEvent['name'], value: string): void {
    if (!value) return;
    if (name === 'recording' && !call.recordings.includes(value)) call.recordings.push(value);
    if (name === 'did' && call.direction === 'incoming' && (!call.did || call.did === 's')) call.did = value;
    if (name === 'bitrixCallId') this.#claimClick(call, value);
  }

  #becomeIncoming(call: Call, ch: Channel, exten: string | undefined): void {
    call.direction = 'incoming';
    call.anchorId = ch.id;
    call.trunk = ch.endpoint;
    call.externalNumber = ch.callerNum ?? '';
    call.withheld = isWithheld(ch.callerNum);
    if (exten && exten !== 's') call.did = exten;
  }

  /** Moves a channel (and its conversation) to the call whose Linkedid it now carries. */
  #move(ch: Channel, from: Call, to: Call, at: number): Call {
    const w = this.#w;
    delete from.channels[ch.id];
    to.channels[ch.id] = ch;
    w.channelCall[ch.id] = to.key;
    const conv = from.conversations[ch.id];
    if (conv && !conv.regId) delete from.conversations[ch.id];
    if (from.originId === ch.id) delete from.originId;
    this.touched.add(to.key);
    this.touched.add(from.key);
    if (!Object.values(from.channels).some((c) => c.hungUpAt === undefined)) this.#endCall(from, at);
    return to;
  }

  #callOf(channelId: string | undefined): Call | undefined {
    if (channelId === undefined) return undefined;
    const key = this.#w.channelCall[channelId];
    return key === undefined ? undefined : this.#w.calls[key];
  }

  // ── dialling ──────────────────────────────────────────────────────────────────────────────────────────

  #onDialBegin(e: DialBeginEvent): void {
    const callerHit = e.caller ? this.#channel(e.caller, e.at, true) : undefined;
    const destHit = this.#channel(e.dest, e.at, true);
    if (!destHit) return;
    let { call, ch: dest } = destHit;
    // The dialled channel belongs to the dialler's call (its Linkedid may lag behind).
    if (callerHit && callerHit.call.key !== call.key) call = this.#move(dest, call, callerHit.call, e.at);
    dest.dialedBy = callerHit ? callerHit.ch.id : null;
    if (e.dialString !== undefined) dest.dialString = e.dialString;
    const caller = callerHit?.ch;

    if (dest.kind === 'extension') this.#ringExtension(call, dest, caller, e.at);
    else if (dest.kind === 'trunk') this.#dialTrunk(call, dest, caller, e);
  }

  #ringExtension(call: Call, dest: Channel, caller: Channel | undefined, at: number): void {
    if (!call.direction) {
      const origin = call.originId ? call.channels[call.originId] : undefined;
      // An extension that dials another one itself is an internal call; an Originate's ringing of the agent
      // (origin created by the PBX) waits until something is dialled out.
      if (origin && origin.kind === 'extension' && origin.dialedBy === undefined) {
        call.direction = 'internal';
        call.anchorId = origin.id;
        call.originExtension = origin.endpoint;
        call.peerExtension = dest.endpoint;
      }
    }
    const forCaller = call.direction === 'incoming' ? this.#actsForExternal(call, caller) : call.direction === 'internal';
    const conv = this.#conversation(call, dest, 'agent', dest.endpoint, forCaller);
    conv.ringingAt = at;
    delete conv.endedAt;
    if (!forCaller) return;
    if (call.direction === 'internal') {
      // Registered (when enabled) on the extension that placed it; no cards: both parties are colleagues.
      if (this.#registerInternal) this.#attach(this.#openRegistration(call, call.originExtension, at, conv), conv);
      return;
    }
    const reg = this.#openRegistration(call, dest.endpoint, at, conv);
    this.#attach(reg, conv);
    if (this.#showCard === 'ringing') this.#show(call, reg, [dest.endpoint]);
  }

  #dialTrunk(call: Call, dest: Channel, caller: Channel | undefined, e: DialBeginEvent): void {
    if (call.direction === 'incoming') {
      // Forward to an external number on the caller's behalf (follow-me, mobile forward).
      const forCaller = this.#actsForExternal(call, caller);
      const number = numberFromDialString(e.dialString) ?? dest.exten ?? '';
      const conv = this.#conversation(call, dest, 'forward', number, forCaller);
      conv.ringingAt = e.at;
      if (forCaller) this.#attach(this.#openRegistration(call, undefined, e.at, conv), conv);
      return;
    }
    const unregisteredInternal = call.direction === 'internal' && call.registrations.length === 0;
    if (call.direction && !unregisteredInternal) return; // a second trunk leg of an outgoing call
    const number = numberFromDialString(e.dialString) ?? caller?.exten ?? dest.exten ?? '';
    this.#becomeOutgoing(call, dest, number, this.#extensionChannel(call, caller), e.at);
  }

  /** An extension's call out through `trunk` to `number`: registered for that extension, ringing from `at`. */
  #becomeOutgoing(call: Call, trunk: Channel, number: string, agent: Channel | undefined, at: number): void {
    call.direction = 'outgoing';
    call.trunk = trunk.endpoint;
    call.externalNumber = number;
    call.withheld = isWithheld(number);
    if (agent) call.originExtension = agent.endpoint;
    delete call.anchorId;
    delete call.peerExtension;
    const conv = agent ? this.#conversation(call, agent, 'caller', agent.endpoint, true) : undefined;
    if (conv) conv.ringingAt = at;
    const reg = this.#openRegistration(call, agent?.endpoint, at, conv);
    if (conv) this.#attach(reg, conv);
    if (agent && this.#showCard === 'ringing') this.#show(call, reg, [agent.endpoint]);
  }

  /** Whether a dial was made for the external party: by its trunk leg, or by a Local chain it started (queues). */
  #actsForExternal(call: Call, caller: Channel | undefined): boolean {
    for (let ch = caller, hops = 0; ch && hops < 8; hops++) {
      if (ch.id === call.anchorId || ch.kind === 'trunk') return true;
      if (ch.kind !== 'local') return false;
      const partner = this.#localPartner(call, ch);
      const dialer = partner?.dialedBy ?? ch.dialedBy;
      ch = dialer ? call.channels[dialer] : undefined;
    }
    return false;
  }

  /**
   * The agent's phone behind a channel: itself; for a Local pair, the extension that dialled into it
   * (PJSIP/101 → Local/…@outbound;1, ;2 → trunk), else the one its other half dialled or is bridged with
   * (an Originate to Local/102@from-internal).
   */
  #extensionChannel(call: Call, ch: Channel | undefined, hops = 0): Channel | undefined {
    if (!ch || hops > 8) return undefined;
    if (ch.kind === 'extension') return ch;
    if (ch.kind !== 'local') return undefined;
    const partner = this.#localPartner(call, ch);
    for (const half of [ch, partner]) {
      const dialer = half?.dialedBy ? call.channels[half.dialedBy] : undefined;
      const up = dialer ? this.#extensionChannel(call, dialer, hops + 1) : undefined;
      if (up) return up;
    }
    if (!partner) return undefined;
    const dialled = Object.values(call.channels).filter((c) => c.kind === 'extension' && c.dialedBy === partner.id);
    if (dialled.length > 0) return dialled[dialled.length - 1];
    return this.#bridgeMates(partner.id).map((id) => call.channels[id]).find((c) => c?.kind === 'extension');
  }

  #localPartner(call: Call, ch: Channel): Channel | undefined {
    const name = localPartnerName(ch.name);
    if (!name) return undefined;
    return Object.values(call.channels).find((c) => c.name === name);
  }

  #onDialEnd(e: DialEndEvent): void {
    const callerHit = e.caller ? this.#channel(e.caller, e.at, false) : undefined;
    let destHit = this.#channel(e.dest, e.at, false);
    if (!destHit) return;
    // Pickup: the dialler's call is answered by a phone that started as a call of its own.
    if (callerHit && callerHit.call.key !== destHit.call.key && e.status === 'ANSWER') {
      destHit = { call: this.#move(destHit.ch, destHit.call, callerHit.call, e.at), ch: destHit.ch };
    }
    const { call, ch } = destHit;
    if (ch.dialStatus === 'ANSWER' && e.status !== 'ANSWER') return; // queue members' doubled DialEnd CANCEL
    ch.dialStatus = e.status;
    const conv = call.conversations[ch.id];
    if (!conv) return;
    conv.dialStatus = e.status;
    if (e.status === 'ANSWER') {
      const reg = conv.regId ? this.#reg(call, conv.regId) : undefined;
      if (reg && conv.forCaller && !reg.answeredBy) this.#answer(call, reg, conv);
    } else {
      this.#stopRinging(call, conv, e.at);
    }
  }

  /** An agent's phone stopped ringing without answering: take the card away while the call goes on. */
  #stopRinging(call: Call, conv: Conversation, at: number): void {
    if (conv.firstTalkAt !== undefined) return;
    conv.endedAt ??= at;
    const reg = conv.regId ? this.#reg(call, conv.regId) : undefined;
    if (!reg || reg.answeredBy || reg.finished || conv.kind !== 'agent') return;
    const stillRinging = reg.conversations.some((id) => {
      const other = call.conversations[id];
      return other && other !== conv && other.party === conv.party && other.endedAt === undefined;
    });
    if (!stillRinging) this.#hide(call, reg, [conv.party]);
  }

  // ── bridges and talk time ─────────────────────────────────────────────────────────────────────────────

  #onBridge(e: BridgeEvent): void {
    const hit = this.#channel(e.channel, e.at, false);
    if (!hit) return;
    const members = (this.#w.bridges[e.bridgeId] ??= []);
    if (e.type === 'bridgeEnter') {
      if (!members.includes(hit.ch.id)) members.push(hit.ch.id);
      this.#adoptIntoBridge(hit.call, hit.ch, members, e.at);
    } else {
      const i = members.indexOf(hit.ch.id);
      if (i >= 0) members.splice(i, 1);
      if (members.length === 0) delete this.#w.bridges[e.bridgeId];
    }
    this.#recomputeAll(e.at);
  }

  /**
   * A phone that started as a call of its own (dialled *8 or a parking space) and is now bridged with another
   * call's channels has joined that call: Asterisk re-links it, but only in later events.
   */
  #adoptIntoBridge(call: Call, ch: Channel, members: string[], at: number): void {
    if (ch.kind !== 'extension' || call.originId !== ch.id || call.registrations.length > 0) return;
    if (Object.values(call.channels).some((c) => c.id !== ch.id && c.hungUpAt === undefined)) return;
    const other = members.map((id) => this.#callOf(id)).find((c) => c && c.key !== call.key && c.direction);
    if (other) this.#move(ch, call, other, at);
  }

  #bridgeMates(channelId: string): string[] {
    const out: string[] = [];
    for (const members of Object.values(this.#w.bridges)) {
      if (members.includes(channelId)) for (const id of members) if (id !== channelId) out.push(id);
    }
    return out;
  }

  /** Channels connected to any of `from` through bridges and Local pairs. */
  #reachable(from: string[]): Set<string> {
    const seen = new Set<string>(from);
    const queue = [...from];
    while (queue.length > 0) {
      const id = queue.pop()!;
      const next = this.#bridgeMates(id);
      const ch = this.#callOf(id)?.channels[id];
      if (ch?.kind === 'local') {
        const partner = this.#localPartner(this.#callOf(id)!, ch);
        if (partner && partner.hungUpAt === undefined) next.push(partner.id);
      }
      for (const n of next) if (!seen.has(n)) { seen.add(n); queue.push(n); }
    }
    return seen;
  }

  #anchors(call: Call): string[] {
    const live = (c: Channel | undefined): c is Channel => !!c && c.hungUpAt === undefined;
    if (call.direction === 'outgoing') return Object.values(call.channels).filter((c) => live(c) && c.kind === 'trunk').map((c) => c.id);
    const anchor = call.anchorId ? call.channels[call.anchorId] : undefined;
    return live(anchor) ? [anchor.id] : [];
  }

  #recomputeAll(at: number): void {
    for (const key of [...this.touched]) {
      const call = this.#w.calls[key];
      if (call && call.endedAt === undefined) this.#recompute(call, at);
    }
  }

  /** Starts and stops talk time by who is connected to the external party now; the first connection answers. */
  #recompute(call: Call, at: number): void {
    const anchors = this.#anchors(call);
    const connected = anchors.length > 0 ? this.#reachable(anchors) : new Set<string>();
    // A phone connected to the caller without having been rung for it (pickup, park retrieval, completed
    // attended transfer) gets its conversation now.
    for (const ch of Object.values(call.channels)) {
      if (ch.kind !== 'extension' || ch.hungUpAt !== undefined || !connected.has(ch.id) || anchors.includes(ch.id)) continue;
      const conv = call.conversations[ch.id];
      if (!conv) this.#conversation(call, ch, 'agent', ch.endpoint, true);
      else if (!conv.forCaller && call.direction !== 'outgoing') conv.forCaller = true;
    }
    for (const conv of Object.values(call.conversations)) {
      const ch = call.channels[conv.channelId];
      const now = !!ch && ch.hungUpAt === undefined && connected.has(conv.channelId) && !anchors.includes(conv.channelId);
      if (now && !conv.talking) {
        conv.talking = true;
        conv.talkSince = at;
        if (conv.firstTalkAt === undefined) {
          conv.firstTalkAt = at;
          this.#onConnected(call, conv, at);
        }
      } else if (!now && conv.talking) {
        conv.talking = false;
        conv.talkMs += at - (conv.talkSince ?? at);
        delete conv.talkSince;
      }
    }
  }

  #onConnected(call: Call, conv: Conversation, at: number): void {
    if (call.direction === 'internal' && !this.#registerInternal) return;
    if (!call.direction) return;
    let reg = conv.regId ? this.#reg(call, conv.regId) : undefined;
    if (!reg) {
      const ext = call.direction === 'internal' ? call.originExtension : conv.kind === 'forward' ? undefined : conv.party;
      reg = this.#openRegistration(call, ext, at, conv);
      this.#attach(reg, conv);
    }
    if (!reg.answeredBy) this.#answer(call, reg, conv);
  }

  /** Someone answered this registration: the others' cards go away, the answerer's stays (or appears). */
  #answer(call: Call, reg: Registration, conv: Conversation): void {
    reg.answeredBy = conv.channelId;
    if (this.#showCard === 'never' || call.direction === 'internal') return;
    const others = reg.shown.filter((ext) => ext !== conv.party);
    if (others.length > 0) this.#hide(call, reg, others);
    if (conv.kind !== 'forward' && !reg.shown.includes(conv.party)) this.#show(call, reg, [conv.party]);
  }

  // ── hang-up and the end of a call ─────────────────────────────────────────────────────────────────────

  #onHangup(e: HangupEvent): void {
    const hit = this.#channel(e.channel, e.at, false);
    if (!hit) return;
    const { call, ch } = hit;
    ch.hungUpAt = e.at;
    if (e.cause !== undefined) ch.cause = e.cause;
    for (const [bridgeId, members] of Object.entries(this.#w.bridges)) {
      const i = members.indexOf(ch.id);
      if (i >= 0) members.splice(i, 1);
      if (members.length === 0) delete this.#w.bridges[bridgeId];
    }
    this.#recompute(call, e.at);
    const conv = call.conversations[ch.id];
    if (conv) {
      if (e.cause !== undefined) conv.cause = e.cause;
      if (conv.firstTalkAt === undefined) this.#stopRinging(call, conv, e.at);
      conv.endedAt ??= e.at;
      const reg = conv.regId ? this.#reg(call, conv.regId) : undefined;
      if (reg && reg.answeredBy === conv.channelId && !reg.finished) this.#finishAnswered(call, reg, e.at);
    }
    this.#rememberHangup(ch.id, e.at);
    if (!Object.values(call.channels).some((c) => c.hungUpAt === undefined)) this.#endCall(call, e.at);
    else if (!call.conversations[ch.id] && ch.id !== call.originId && ch.id !== call.anchorId && ch.kind !== 'trunk') {
      // A queue waiting for minutes rings its members again and again: channels that left no conversation are
      // dropped so the call's state does not grow with every round.
      delete call.channels[ch.id];
      delete this.#w.channelCall[ch.id];
    }
  }

  /** Remembered for 10 minutes of PBX time (and at most ~5000), pruned every 1000 hang-ups: O(1) amortised. */
  #rememberHangup(channelId: string, at: number): void {
    const w = this.#w;
    w.recentHangups[channelId] = at;
    w.hangupsSincePrune = (w.hangupsSincePrune ?? 0) + 1;
    if (w.hangupsSincePrune < 1000) return;
    w.hangupsSincePrune = 0;
    const ids = Object.keys(w.recentHangups); // insertion order: oldest first
    const excess = ids.length - 5000;
    ids.forEach((id, i) => {
      if (i < excess || at - w.recentHangups[id]! > 10 * 60_000) delete w.recentHangups[id];
    });
  }

  #endCall(call: Call, at: number): void {
    if (call.endedAt !== undefined) return;
    for (const conv of Object.values(call.conversations)) {
      if (conv.talking) {
        conv.talking = false;
        conv.talkMs += at - (conv.talkSince ?? at);
        delete conv.talkSince;
      }
      conv.endedAt ??= at;
    }
    if (call.direction === 'incoming' && call.registrations.length === 0) {
      // Nobody was ever rung (IVR, a queue whose agents were all busy): still a missed call for the CRM.
      this.#openRegistration(call, undefined, at, undefined);
    }
    if (call.clickToCall && call.registrations.length === 0) {
      // Click-to-call that never got to the client (the agent did not answer): Bitrix24's call must still end.
      call.direction = 'outgoing';
      call.externalNumber ??= call.clickToCall.number ?? '';
      const origin = call.originId ? call.channels[call.originId] : undefined;
      this.#openRegistration(call, call.clickToCall.extension ?? (origin?.kind === 'extension' ? origin.endpoint : undefined), at, undefined);
    }
    for (const reg of call.registrations) {
      if (reg.finished) continue;
      if (reg.answeredBy) this.#finishAnswered(call, reg, at);
      else this.#finishMissed(call, reg, at);
    }
    const answered = call.registrations.filter((r) => r.answeredBy);
    if (call.recordings.length > 0) {
      for (const reg of answered) this.intents.push({ kind: 'attachRecord', callKey: call.key, regId: reg.id, paths: [...call.recordings] });
    }
    if (call.registrations.length > 0 && call.direction && !call.registrations[0]!.existingCallId) {
      const rung = Object.values(call.conversations).filter((c) => c.kind === 'agent' && c.ringingAt !== undefined)
        .sort((a, b) => (a.ringingAt ?? 0) - (b.ringingAt ?? 0));
      const last = rung[rung.length - 1];
      this.intents.push({
        kind: 'callEnded', callKey: call.key, regId: 'r0', direction: call.direction, answered: answered.length > 0,
        externalNumber: call.withheld ? '' : call.externalNumber ?? '', withheld: call.withheld, startedAt: call.startedAt, endedAt: at,
        ...(call.did ? { did: call.did } : {}), ...(last ? { lastRungExtension: last.party } : {}),
      });
    }
    call.endedAt = at;
    this.ended.push(call.key);
    this.endedCalls.set(call.key, call);
    this.touched.add(call.key);
    this.#forget(call);
  }

  /** Drops an ended call from the indexes (its final state is still returned to the caller via `touched`). */
  #forget(call: Call): void {
    const w = this.#w;
    for (const id of Object.keys(call.channels)) if (w.channelCall[id] === call.key) delete w.channelCall[id];
    for (const l of call.linkedIds) if (w.linkedCall[l] === call.key) delete w.linkedCall[l];
    delete w.calls[call.key];
  }

  #finishAnswered(call: Call, reg: Registration, at: number): void {
    const conv = call.conversations[reg.answeredBy!]!;
    const talkMs = conv.talkMs + (conv.talking ? at - (conv.talkSince ?? at) : 0);
    const ext = conv.kind === 'forward' || call.direction === 'internal' ? reg.extension : conv.party;
    reg.finished = true;
    this.intents.push({
      kind: 'finish', callKey: call.key, regId: reg.id, durationSec: Math.round(talkMs / 1000), status: '200',
      answered: true, endedAt: conv.endedAt ?? at, ...(ext ? { extension: ext } : {}),
      ...(conv.cause ? { hangupCause: conv.cause } : {}), ...this.#clickToCallFinish(call, reg, at),
    });
  }

  #finishMissed(call: Call, reg: Registration, at: number): void {
    if (reg.shown.length > 0) this.#hide(call, reg, [...reg.shown]);
    const convs = reg.conversations.map((id) => call.conversations[id]).filter((c): c is Conversation => !!c);
    const rung = convs.filter((c) => c.kind === 'agent' && c.ringingAt !== undefined);
    const last = rung.reduce<Conversation | undefined>((a, c) => (!a || (c.ringingAt ?? 0) >= (a.ringingAt ?? 0) ? c : a), undefined);
    const ext = call.direction === 'incoming' ? last?.party ?? reg.extension : reg.extension;
    const outcome = missedStatus(call, convs);
    reg.finished = true;
    this.intents.push({
      kind: 'finish', callKey: call.key, regId: reg.id, durationSec: 0, status: outcome.status, answered: false, endedAt: at,
      ...(ext ? { extension: ext } : {}), ...(outcome.cause ? { hangupCause: outcome.cause } : {}), ...this.#clickToCallFinish(call, reg, at),
    });
  }

  /** A click-to-call's finish goes to the clicking user, says how it went, and its CALL_ID is remembered as done. */
  #clickToCallFinish(call: Call, reg: Registration, at: number): { bitrixUserId?: number; outcome?: 'positive' | 'negative' | 'neutral' } {
    if (!reg.existingCallId) return {};
    this.#w.clickToCallDone[reg.existingCallId] = at;
    const user = call.clickToCall?.bitrixUserId;
    const dialled = Object.values(call.channels).some((c) => c.kind === 'trunk');
    const outcome = reg.answeredBy ? 'positive' : dialled ? 'negative' : 'neutral';
    return { outcome, ...(user !== undefined ? { bitrixUserId: user } : {}) };
  }

  // ── click-to-call ─────────────────────────────────────────────────────────────────────────────────────

  /** The Originate's first channel is known (OriginateResponse): its call is Bitrix24's click-to-call. */
  #onClickToCall(e: ClickToCallEvent): void {
    this.#pruneClickToCall(e.at);
    // Already finished (given up on when its answer was lost): the call is followed as an ordinary one.
    if (this.#w.clickToCallDone[e.bitrixCallId] !== undefined) return;
    const call = e.channelId ? this.#callOf(e.channelId) : undefined;
    // A channel we have not seen stays pending: its B24_CALL_ID (Status after a reconnect) or the deadline ends it.
    if (!call || call.endedAt !== undefined) return;
    if (this.#registeredAsOrdinary(call)) return; // as in #claimClick
    const crmEntity = this.#w.clickPending[e.bitrixCallId]?.crmEntity ?? call.clickToCall?.crmEntity;
    delete this.#w.clickPending[e.bitrixCallId];
    call.clickToCall = {
      bitrixCallId: e.bitrixCallId, bitrixUserId: e.bitrixUserId, number: e.number, ...(e.extension ? { extension: e.extension } : {}),
      ...(crmEntity ? { crmEntity } : {}),
    };
    this.touched.add(call.key);
  }

  /**
   * The Originate failed without a call we follow (or before one existed): the Bitrix24 call is finished
   * here — once, whatever else reports the same CALL_ID later.
   */
  #onClickToCallFailed(e: ClickToCallFailedEvent): void {
    this.#pruneClickToCall(e.at);
    const crmEntity = e.crmEntity ?? this.#w.clickPending[e.bitrixCallId]?.crmEntity;
    delete this.#w.clickPending[e.bitrixCallId];
    if (clickSettled(this.#w, e.bitrixCallId)) return;
    const status: FinishStatus = e.reason === 'busy' ? '486' : e.reason === 'noanswer' ? '603-S' : e.reason === 'unavailable' ? '480' : 'OTHER';
    const callKey = `c2c-${e.bitrixCallId}`;
    const base = { callKey, regId: 'r0', bitrixUserId: e.bitrixUserId, ...(e.extension ? { extension: e.extension } : {}) };
    // A call that existed only in Bitrix24: kept just long enough to be reported with this step's result.
    const call: Call = {
      key: callKey, linkedIds: [], direction: 'outgoing', startedAt: e.at, endedAt: e.at, externalNumber: e.number, withheld: false,
      channels: {}, conversations: {}, recordings: [], transfers: [],
      registrations: [{ id: 'r0', reason: 'call', conversations: [], shown: [], finished: true, existingCallId: e.bitrixCallId, ...(e.extension ? { extension: e.extension } : {}) }],
      clickToCall: {
        bitrixCallId: e.bitrixCallId, bitrixUserId: e.bitrixUserId, number: e.number, ...(e.extension ? { extension: e.extension } : {}),
        ...(crmEntity ? { crmEntity } : {}),
      },
    };
    this.endedCalls.set(callKey, call);
    this.ended.push(callKey);
    this.touched.add(callKey);
    this.intents.push({
      kind: 'register', ...base, direction: 'outgoing', externalNumber: e.number, withheld: false, startedAt: e.at, reason: 'call',
      existingCallId: e.bitrixCallId, ...(crmEntity ? { crmEntity } : {}),
    });
    this.intents.push({
      kind: 'finish', ...base, durationSec: 0, status, answered: false, endedAt: e.at, outcome: 'neutral', ...(e.detail ? { failedReason: e.detail } : {}),
    });
    this.#w.clickToCallDone[e.bitrixCallId] = e.at;
  }

  /**
   * A channel carries B24_CALL_ID (inherited from the click's Originate, read live or from Status after a
   * reconnect): the call is that click's, with what the click said, even if the OriginateResponse was lost.
   * A CALL_ID already finished is not taken again: Bitrix24 would refuse a second finish.
   */
  #claimClick(call: Call, bitrixCallId: string): void {
    if (call.clickToCall || this.#w.clickToCallDone[bitrixCallId] !== undefined) return;
    // Already registered as an ordinary call (its variable came too late): the click stays pending and ends as
    // failed at its deadline rather than never.
    if (this.#registeredAsOrdinary(call)) return;
    const pending = this.#w.clickPending[bitrixCallId];
    delete this.#w.clickPending[bitrixCallId];
    call.clickToCall = pending
      ? {
        bitrixCallId, bitrixUserId: pending.bitrixUserId, number: pending.number, extension: pending.extension,
        ...(pending.crmEntity ? { crmEntity: pending.crmEntity } : {}),
      }
      : { bitrixCallId };
    this.touched.add(call.key);
  }

  /** Registered by us (not on Bitrix24's CALL_ID): a click can no longer become this call. */
  #registeredAsOrdinary(call: Call): boolean {
    return call.registrations.length > 0 && !call.registrations[0]!.existingCallId;
  }

  /** Clicks nothing claimed by their deadline: Asterisk's answer was lost, so Bitrix24's call ends as failed. */
  #expireClicks(at: number): void {
    for (const [bitrixCallId, p] of Object.entries(this.#w.clickPending)) {
      if (p.deadline > at) continue;
      this.#onClickToCallFailed({
        type: 'clickToCallFailed', at, bitrixCallId, bitrixUserId: p.bitrixUserId, number: p.number, extension: p.extension,
        reason: 'failed', detail: 'Asterisk never reported how the Originate went (AMI connection lost or daemon restarted)',
      });
    }
  }

  /** Forgets finished click-to-call ids after 6 hours of PBX time (a late duplicate is long impossible by then). */
  #pruneClickToCall(at: number): void {
    for (const [id, doneAt] of Object.entries(this.#w.clickToCallDone)) if (at - doneAt > 6 * 3_600_000) delete this.#w.clickToCallDone[id];
  }

  // ── registrations and cards ───────────────────────────────────────────────────────────────────────────

  #reg(call: Call, id: string): Registration | undefined {
    return call.registrations.find((r) => r.id === id);
  }

  /** The registration a newly rung party joins: the current one while nobody answered it, else a new one. */
  #openRegistration(call: Call, extension: string | undefined, at: number, conv: Conversation | undefined): Registration {
    const last = call.registrations[call.registrations.length - 1];
    if (last && !last.answeredBy && !last.finished) return last;
    const reason = call.registrations.length === 0 ? 'call' : this.#takeOverReason(call, conv);
    const reg: Registration = { id: `r${call.registrations.length}`, reason, conversations: [], shown: [], finished: false };
    if (extension) reg.extension = extension;
    // Bitrix24 registered a click-to-call itself: its CALL_ID is this call's first registration.
    const c2c = call.registrations.length === 0 ? call.clickToCall : undefined;
    if (c2c) reg.existingCallId = c2c.bitrixCallId;
    call.registrations.push(reg);
    const intent: RegisterIntent = {
      kind: 'register', callKey: call.key, regId: reg.id, direction: call.direction ?? 'incoming',
      externalNumber: call.withheld ? '' : call.externalNumber ?? '', withheld: call.withheld,
      startedAt: reg.id === 'r0' ? call.startedAt : at, reason,
    };
    if (call.did) intent.did = call.did;
    if (call.trunk) intent.trunk = call.trunk;
    if (extension) intent.extension = extension;
    if (call.direction === 'internal' && call.peerExtension) intent.peerExtension = call.peerExtension;
    if (c2c) {
      intent.existingCallId = c2c.bitrixCallId;
      if (c2c.bitrixUserId !== undefined) intent.bitrixUserId = c2c.bitrixUserId;
      if (c2c.crmEntity) intent.crmEntity = c2c.crmEntity;
    }
    this.intents.push(intent);
    return reg;
  }

  #takeOverReason(call: Call, conv: Conversation | undefined): RegisterIntent['reason'] {
    if (conv?.kind === 'forward') return 'forward';
    const last = call.transfers[call.transfers.length - 1];
    if (last?.kind === 'pickup') return 'pickup';
    if (last?.kind === 'park' || last?.kind === 'unpark') return 'park';
    return 'transfer';
  }

  #attach(reg: Registration, conv: Conversation): void {
    conv.regId = reg.id;
    if (!reg.conversations.includes(conv.channelId)) reg.conversations.push(conv.channelId);
  }

  #show(call: Call, reg: Registration, exts: string[]): void {
    // Bitrix24 opened the card of its own click-to-call call itself.
    if (reg.existingCallId) return;
    const fresh = exts.filter((x) => !reg.shown.includes(x));
    if (fresh.length === 0 || this.#showCard === 'never') return;
    reg.shown.push(...fresh);
    this.intents.push({ kind: 'show', callKey: call.key, regId: reg.id, extensions: fresh });
  }

  #hide(call: Call, reg: Registration, exts: string[]): void {
    const gone = exts.filter((x) => reg.shown.includes(x));
    if (gone.length === 0) return;
    reg.shown = reg.shown.filter((x) => !gone.includes(x));
    this.intents.push({ kind: 'hide', callKey: call.key, regId: reg.id, extensions: gone });
  }

  #conversation(call: Call, ch: Channel, kind: Conversation['kind'], party: string, forCaller: boolean): Conversation {
    const existing = call.conversations[ch.id];
    if (existing) {
      if (forCaller) existing.forCaller = true;
      return existing;
    }
    const conv: Conversation = { channelId: ch.id, kind, party, forCaller, talking: false, talkMs: 0 };
    call.conversations[ch.id] = conv;
    return conv;
  }

  // ── transfers and reconciliation ──────────────────────────────────────────────────────────────────────

  #onTransfer(e: TransferEvent): void {
    const call = e.linkedId ? this.#w.calls[this.#w.linkedCall[e.linkedId] ?? ''] : undefined;
    if (!call) return;
    call.transfers.push({ kind: e.kind, at: e.at, ...(e.target ? { target: e.target } : {}) });
    this.touched.add(call.key);
  }

  /**
   * After a (re)connect: the live channels Asterisk lists. Channels we knew that are gone ended while we were
   * away (finished with what we know); channels we did not know (connected mid-call) are adopted, and talk time
   * counts from now — the channel's age is not its talk time.
   */
  #onSnapshot(e: SnapshotEvent): void {
    const live = new Set(e.channels.map((c) => c.channelId));
    const askable = e.knownBefore ? new Set(e.knownBefore) : undefined;
    for (const call of Object.values(this.#w.calls)) {
      for (const ch of Object.values(call.channels)) {
        if (ch.hungUpAt !== undefined || live.has(ch.id) || (askable && !askable.has(ch.id))) continue;
        // It ended while we were away: at the last moment we know it existed, so the outage is not talk time.
        const at = Math.min(e.at, call.lastEventAt ?? e.at);
        this.#onHangup({ type: 'hangup', at, channel: { channelId: ch.id, linkedId: call.key, name: ch.name } });
      }
    }
    for (const ref of e.channels) {
      const hit = this.#channel(ref, e.at, true);
      if (!hit) continue;
      if (ref.bridgeId) {
        for (const [id, members] of Object.entries(this.#w.bridges)) {
          if (id === ref.bridgeId) continue;
          const i = members.indexOf(ref.channelId);
          if (i >= 0) members.splice(i, 1);
          if (members.length === 0) delete this.#w.bridges[id];
        }
        const members = (this.#w.bridges[ref.bridgeId] ??= []);
        if (!members.includes(ref.channelId)) members.push(ref.channelId);
      }
      const { call, ch } = hit;
      if (ref.ageMs !== undefined && call.registrations.length === 0) {
        ch.createdAt = Math.min(ch.createdAt, e.at - ref.ageMs);
        call.startedAt = Math.min(call.startedAt, ch.createdAt);
      }
      if (call.originId === ch.id && !call.direction && ch.kind === 'trunk') this.#becomeIncoming(call, ch, ref.exten);
    }
    // Variables read with the snapshot (Status): before anything is registered, so a click-to-call joined
    // mid-way is finished on Bitrix24's CALL_ID instead of being registered a second time. A DID counts only
    // once the call is known to be incoming, which the loop below decides.
    this.#applySnapshotVariables(e, (name) => name !== 'did');
    for (const key of [...this.touched]) {
      const call = this.#w.calls[key];
      if (!call || call.direction) continue;
      const trunk = Object.values(call.channels).find((c) => c.kind === 'trunk' && c.hungUpAt === undefined);
      if (!trunk) continue;
      const origin = call.originId ? call.channels[call.originId] : undefined;
      if (call.clickToCall || (origin?.kind === 'extension' && origin.hungUpAt === undefined)) {
        // The call began on an extension (or is Bitrix24's click): that phone dialled out. The agent channel's
        // Exten is usually the number it dialled.
        const agent = origin?.kind === 'extension' ? origin : Object.values(call.channels).find((c) => c.kind === 'extension' && c.hungUpAt === undefined);
        // `s` is a macro's or Gosub's placeholder (FreePBX's dialout-trunk): the trunk leg's caller is then the number.
        const number = [call.clickToCall?.number, agent?.exten, trunk.exten, trunk.callerNum].find((n) => n && n !== 's') ?? '';
        this.#becomeOutgoing(call, trunk, number, agent, e.at);
        continue;
      }
      // Origin unknown (it hung up before we came): an inbound trunk leg with an agent makes it incoming.
      this.#becomeIncoming(call, trunk, trunk.exten);
    }
    this.#applySnapshotVariables(e, (name) => name === 'did');
    this.#recomputeAll(e.at);
  }

  #applySnapshotVariables(e: SnapshotEvent, which: (name: VarSetEvent['name']) => boolean): void {
    for (const ref of e.channels) {
      const vars = ref.variables?.filter((v) => which(v.name));
      const call = vars?.length ? this.#callOf(ref.channelId) : undefined;
      if (call) for (const v of vars!) this.#applyVariable(call, v.name, v.value);
    }
  }

}
