/**
 * An Asterisk stand-in over real TCP that replays the recorded AMI traces (test/fixtures/ami, `ami-trace/1`).
 *
 * What it does:
 * - Every connection gets the banner of the current trace session, then must Login (username/secret from the
 *   options, default bx24 / lab). A wrong secret gets `Response: Error` / `Authentication failed` and the socket
 *   is closed, as Asterisk does. Actions before Login get `Permission denied`.
 * - `play(trace)` loads one or more traces. The replay starts at the first successful Login (or at once when a
 *   client is already logged in) and sends the trace's `in` messages in order, with the recorded gaps divided by
 *   `speed` (Infinity or 0: as fast as possible). The recorded banner, Login and Login response are not replayed
 *   as such: they are what the live Login handshake answers.
 * - Scripted actions: when the replay reaches a recorded `out` action (Originate, CoreShowChannels, Status,
 *   Getvar…), it waits for the client to send an action of that name, maps the recorded ActionID to the client's
 *   ActionID in every later line, and goes on. If the client sent that action earlier (while the replay was
 *   still before that point), it is held and answered when the replay gets there, so the answer stays in
 *   recorded order. If the client does not send it within `actionWaitMs` (default 2 s wall time), the step is
 *   skipped together with every recorded line carrying its ActionID. Lines carrying a client's ActionID go to
 *   that client's connection only; all others are broadcast to every logged-in connection.
 * - Live answers (not from the trace): Ping (`Ping: Pong` + `Timestamp`), Logoff (`Goodbye` + close),
 *   CoreShowChannels from the channels that the replay created and did not hang up yet, Status from the same
 *   channels with the variables their replayed VarSets set (`(null)` for the others, as Asterisk prints them),
 *   Originate (`Originate successfully queued`), and `Invalid/unknown command` for anything else.
 * - `timestamps` (default true) adds `Timestamp: <epoch s.µs>` = baseEpochMs + recorded t right after the
 *   `Privilege:` line of every unsolicited event, as Asterisk does with timestampevents=yes (list items, which
 *   Asterisk writes directly to the requester, get none).
 * - Multi-session traces (asterisk-restart): after the last line of a session the simulator closes every
 *   connection; the next connection gets the next session's banner and Login answer and the replay goes on
 *   with that session. `rejectReconnects: n` accepts and drops the first n connections after a session
 *   boundary (the recorded "broken pipe" attempt).
 * - Several traces are played back to back on one connection (each shifted in time to start `gapMs` after the
 *   previous one ends; their Login-time FullyBooted/SuccessfulAuth lines are left out). `copies: n` plays n
 *   copies of each trace at the same time with rewritten identities (see rewriteIdentities).
 * - `setSilent(true)` makes it a black hole (half-open peer): nothing at all is written while it is on.
 */
import net from 'node:net';
import { frameField, frameFields, readTrace, replaceField, rewriteIdentities, traceSessions } from './ami-trace.ts';
import type { Trace } from './ami-trace.ts';

export { readTrace, rewriteIdentities } from './ami-trace.ts';
export type { Trace, TraceHeader, TraceLine } from './ami-trace.ts';

export interface SimulatorOptions {
  username?: string;
  secret?: string;
  /** 1 = real time, 100 = 100x faster, Infinity or 0 = as fast as possible (default Infinity). */
  speed?: number;
  /** Add `Timestamp:` to every replayed unsolicited event (default true). */
  timestamps?: boolean;
  /** Epoch ms that recorded t = 0 maps to for `Timestamp:` (default: wall clock when the replay starts). */
  baseEpochMs?: number;
  /** Banner for connections when no trace is loaded (default `Asterisk Call Manager/11.0.0`). */
  banner?: string;
}

export interface PlayOptions {
  speed?: number;
  /** Run this many copies of each trace at once, identities rewritten per copy (default 1). */
  copies?: number;
  /** The first copy's number (default 0, the recorded identities): later plays can continue the numbering. */
  firstCopy?: number;
  /** Wall ms to wait for the client to send a scripted action before skipping it (default 2000). */
  actionWaitMs?: number;
  /** Recorded ms between the end of one trace and the start of the next one on the same connection (default 100). */
  gapMs?: number;
  /** Connections accepted and dropped at once after a session boundary (default 0). */
  rejectReconnects?: number;
}

export interface ReceivedAction {
  /** Action name as the client spelled it. */
  name: string;
  /** First value of every key. */
  fields: Record<string, string>;
  /** The exact frame. */
  raw: string;
}

interface InStep {
  kind: 'in';
  t: number;
  raw: string;
  /** Distinguishes ActionIDs of different traces/copies that were recorded with the same text. */
  scope: string;
  actionId?: string;
}

interface OutStep {
  kind: 'out';
  t: number;
  action: string;
  /** Action name (lower case) plus its recorded `Variables:`: Status and Status with Variables are different steps. */
  match: string;
  scope: string;
  actionId: string;
}

/** What a client's action must match to claim a scripted step. */
function matchKey(action: string, variables: string | undefined): string {
  return `${action.toLowerCase()}|${variables ?? ''}`;
}

type Step = InStep | OutStep;

interface Session {
  banner: string;
  /** Recorded Login answer; its ActionID is replaced by the client's. */
  loginResponse: string;
  /** Recorded t of the Login answer: replay time 0 of this session. */
  t0: number;
  steps: Step[];
}

interface Client {
  socket: net.Socket;
  buffer: string;
  authed: boolean;
}

interface LiveChannel {
  fields: Record<string, string>;
  createdT: number;
  /** Channel variables seen in VarSet, by name without inheritance underscores (as Asterisk looks them up). */
  vars: Map<string, string>;
}

const DEFAULT_BANNER = 'Asterisk Call Manager/11.0.0';
const CHANNEL_KEYS = ['Channel', 'ChannelState', 'ChannelStateDesc', 'CallerIDNum', 'CallerIDName', 'ConnectedLineNum',
  'ConnectedLineName', 'Language', 'AccountCode', 'Context', 'Exten', 'Priority', 'Uniqueid', 'Linkedid'] as const;

/** Builds the replay script (sessions of steps on one timeline) from traces. */
function buildSessions(traces: Trace[], copies: number, gapMs: number, firstCopy = 0): Session[] {
  const sessions: Session[] = [];
  let lastT = 0;
  traces.forEach((trace, traceIndex) => {
    const traceSessionsList = traceSessions(trace);
    if (copies > 1 && traceSessionsList.length > 1) throw new Error(`${trace.path}: copies need a single-session trace`);
    traceSessionsList.forEach((lines, sessionIndex) => {
      const banner = lines.find((l) => l.dir === 'in' && l.raw.startsWith('Asterisk Call Manager/'));
      const login = lines.find((l) => l.dir === 'out' && /^Action: Login\r\n/i.test(l.raw));
      const loginId = login ? frameField(login.raw, 'ActionID') : undefined;
      const loginResponse = lines.find((l) => l.dir === 'in' && loginId !== undefined && l.raw.startsWith('Response: ') && frameField(l.raw, 'ActionID') === loginId);
      const t0 = loginResponse?.t ?? lines[0]?.t ?? 0;
      const continues = sessions.length > 0 && sessionIndex === 0;
      // A trace that continues the previous one's connection starts gapMs after it; a new session keeps its own clock.
      const shift = continues ? lastT + gapMs - t0 : traceIndex > 0 ? lastT - t0 : 0;
      const body = lines.filter((l) => l !== banner && l !== login && l !== loginResponse);
      const steps: Step[] = [];
      for (let copy = firstCopy; copy < firstCopy + copies; copy++) {
        const scope = `${traceIndex}:${copy}`;
        for (const line of body) {
          const raw = rewriteIdentities(line.raw, copy);
          const t = line.t + shift;
          if (line.dir === 'out') {
            const action = frameField(raw, 'Action') ?? '';
            steps.push({ kind: 'out', t, action, match: matchKey(action, frameField(raw, 'Variables')), scope, actionId: frameField(raw, 'ActionID') ?? '' });
          } else {
            // Login-time events of an extra trace or copy: no Login happened for them on this connection.
            if ((continues || copy > firstCopy) && isLoginEvent(raw)) continue;
            steps.push({ kind: 'in', t, raw, scope, actionId: frameField(raw, 'ActionID') });
          }
        }
      }
      steps.sort((a, b) => a.t - b.t); // stable: copies of one instant keep copy order
      const last = steps[steps.length - 1];
      lastT = Math.max(lastT, last ? last.t : t0 + shift);
      if (continues) {
        const current = sessions[sessions.length - 1];
        current?.steps.push(...steps);
      } else {
        sessions.push({
          banner: banner ? banner.raw.replace(/\r\n$/, '') : String(trace.header.ami_banner ?? DEFAULT_BANNER),
          loginResponse: loginResponse?.raw ?? 'Response: Success\r\nActionID: x\r\nMessage: Authentication accepted\r\n\r\n',
          t0: t0 + shift,
          steps,
        });
      }
    });
  });
  return sessions;
}

function isLoginEvent(raw: string): boolean {
  return raw.startsWith('Event: FullyBooted\r\n') || (raw.startsWith('Event: SuccessfulAuth\r\n') && frameField(raw, 'Service') === 'AMI');
}

function epochSeconds(ms: number): string {
  return (ms / 1000).toFixed(6);
}

function hms(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

/** One play(): walks the script, pausing at scripted actions. */
class Replay {
  readonly sessions: Session[];
  sessionIndex = 0;
  stepIndex = 0;
  /** True while the current session's steps are being played (after its Login). */
  running = false;
  finished = false;
  /** Wall ms and recorded t that correspond; due time of a step = anchorWall + (t - anchorT) / speed. */
  anchorWall = 0;
  anchorT = 0;
  /** Recorded t of the last step played: the "now" of the recorded PBX. */
  currentT = 0;
  timer: NodeJS.Timeout | undefined;
  waitTimer: NodeJS.Timeout | undefined;
  /** Client actions that arrived before the replay reached their scripted step, by lower-case name. */
  readonly early = new Map<string, Array<{ client: Client; actionId: string }>>();
  /** scope|recorded ActionID → the client's ActionID and connection. */
  readonly idMap = new Map<string, { actionId: string; client: Client }>();
  readonly skipped = new Set<string>();
  reconnectDrops = 0;
  readonly speed: number;
  readonly actionWaitMs: number;
  readonly rejectReconnects: number;
  /** Epoch ms that recorded t = 0 maps to, for `Timestamp:`. */
  baseEpochMs: number | undefined;
  readonly done: Promise<void>;
  resolveDone: () => void = () => undefined;

  constructor(sessions: Session[], opts: { speed: number; actionWaitMs: number; rejectReconnects: number; baseEpochMs?: number }) {
    this.sessions = sessions;
    this.speed = opts.speed;
    this.actionWaitMs = opts.actionWaitMs;
    this.rejectReconnects = opts.rejectReconnects;
    this.baseEpochMs = opts.baseEpochMs;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  get session(): Session | undefined {
    return this.sessions[this.sessionIndex];
  }

  /** Remaining scripted steps of the current session named `action` that no held action is reserved for. */
  unclaimedSteps(match: string): number {
    const steps = this.session?.steps ?? [];
    let count = 0;
    for (let i = this.stepIndex; i < steps.length; i++) {
      const step = steps[i];
      if (step?.kind === 'out' && step.match === match) count++;
    }
    return count - (this.early.get(match)?.length ?? 0);
  }
}

export class AmiSimulator {
  /** Every action any client sent, in arrival order (Login and keepalive Pings included). */
  readonly actions: ReceivedAction[] = [];
  private readonly username: string;
  private readonly secret: string;
  private readonly speed: number;
  private readonly timestamps: boolean;
  private readonly baseEpochMs: number | undefined;
  private readonly defaultBanner: string;
  private readonly server: net.Server;
  private readonly clients = new Set<Client>();
  private accepted = 0;
  private silent = false;
  private replay: Replay | undefined;
  private readonly channels = new Map<string, LiveChannel>();

  constructor(opts: SimulatorOptions = {}) {
    this.username = opts.username ?? 'bx24';
    this.secret = opts.secret ?? 'lab';
    this.speed = opts.speed ?? Infinity;
    this.timestamps = opts.timestamps ?? true;
    this.baseEpochMs = opts.baseEpochMs;
    this.defaultBanner = opts.banner ?? DEFAULT_BANNER;
    this.server = net.createServer((socket) => this.onConnection(socket));
  }

  /** Starts listening on 127.0.0.1 (port 0 = any free port); resolves with the port. */
  listen(port = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve(this.port);
      });
    });
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  /** Connections accepted since the simulator started. */
  get connections(): number {
    return this.accepted;
  }

  /** Connections open right now. */
  get openConnections(): number {
    return this.clients.size;
  }

  /** The recorded `t` of the last step played (how far the replay has got), 0 before it starts. */
  get recordedT(): number {
    return this.replay?.currentT ?? 0;
  }

  /** Loads trace(s) to replay (see the file comment). Throws when a replay is still running. */
  play(tracePath: string | string[], opts: PlayOptions = {}): void {
    if (this.replay && !this.replay.finished) throw new Error('AmiSimulator: a replay is still running');
    const paths = Array.isArray(tracePath) ? tracePath : [tracePath];
    const sessions = buildSessions(paths.map(readTrace), opts.copies ?? 1, opts.gapMs ?? 100, opts.firstCopy ?? 0);
    const speed = opts.speed ?? this.speed;
    this.replay = new Replay(sessions, {
      speed: speed === 0 ? Infinity : speed,
      actionWaitMs: opts.actionWaitMs ?? 2000,
      rejectReconnects: opts.rejectReconnects ?? 0,
      ...(this.baseEpochMs === undefined ? {} : { baseEpochMs: this.baseEpochMs }),
    });
    if ([...this.clients].some((c) => c.authed)) this.startSession(this.replay);
  }

  /** Resolves when the loaded trace(s) were fully replayed (at once when nothing is loaded). */
  done(): Promise<void> {
    return this.replay?.done ?? Promise.resolve();
  }

  /** Abrupt TCP close of every connection (the replay goes on; what is sent meanwhile is lost, as with Asterisk). */
  dropConnections(): void {
    for (const client of this.clients) client.socket.destroy();
  }

  /** While on, nothing is written to any connection (a half-open peer); actions are still recorded. */
  setSilent(on: boolean): void {
    this.silent = on;
  }

  async close(): Promise<void> {
    const replay = this.replay;
    if (replay) {
      clearTimeout(replay.timer);
      clearTimeout(replay.waitTimer);
      replay.finished = true;
      replay.resolveDone();
    }
    for (const client of this.clients) client.socket.destroy();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(socket: net.Socket): void {
    this.accepted++;
    socket.on('error', () => undefined); // a client vanishing mid-write is normal here
    const replay = this.replay;
    if (replay && replay.reconnectDrops > 0) {
      replay.reconnectDrops--;
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const client: Client = { socket, buffer: '', authed: false };
    this.clients.add(client);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(client, chunk));
    socket.on('close', () => this.clients.delete(client));
    const banner = replay && !replay.finished ? replay.session?.banner : undefined;
    this.write(client, `${banner ?? this.lastBanner()}\r\n`);
  }

  private lastBanner(): string {
    const sessions = this.replay?.sessions;
    return sessions?.[sessions.length - 1]?.banner ?? this.defaultBanner;
  }

  private write(client: Client, text: string): void {
    if (this.silent || text === '' || client.socket.destroyed || !client.socket.writable) return;
    client.socket.write(text);
  }

  private onData(client: Client, chunk: string): void {
    client.buffer += chunk;
    let end: number;
    while ((end = client.buffer.indexOf('\r\n\r\n')) !== -1) {
      const raw = client.buffer.slice(0, end + 4);
      client.buffer = client.buffer.slice(end + 4);
      const fields = frameFields(raw);
      const name = fields['Action'];
      if (name === undefined) continue;
      this.actions.push({ name, fields, raw });
      this.onAction(client, name, fields);
    }
  }

  private onAction(client: Client, name: string, fields: Record<string, string>): void {
    const lower = name.toLowerCase();
    const actionId = fields['ActionID'] ?? '';
    const idLine = actionId === '' ? '' : `ActionID: ${actionId}\r\n`;
    if (!client.authed) {
      if (lower !== 'login') {
        this.write(client, `Response: Error\r\n${idLine}Message: Permission denied\r\n\r\n`);
        return;
      }
      if (fields['Username'] !== this.username || fields['Secret'] !== this.secret) {
        this.write(client, `Response: Error\r\n${idLine}Message: Authentication failed\r\n\r\n`);
        client.socket.end();
        return;
      }
      client.authed = true;
      const replay = this.replay && !this.replay.finished ? this.replay : undefined;
      const recorded = replay?.session?.loginResponse ?? 'Response: Success\r\nActionID: x\r\nMessage: Authentication accepted\r\n\r\n';
      this.write(client, actionId === '' ? recorded.replace(/\r\nActionID: [^\r]*/, '') : replaceField(recorded, 'ActionID', actionId));
      if (replay && !replay.running) this.startSession(replay);
      return;
    }
    if (lower === 'logoff') {
      this.write(client, `Response: Goodbye\r\n${idLine}Message: Thanks for all the fish.\r\n\r\n`);
      client.socket.end();
      return;
    }
    if (this.offerToReplay(client, lower, this.matchFor(lower, fields['Variables']), actionId)) return;
    switch (lower) {
      case 'ping':
        this.write(client, `Response: Success\r\n${idLine}Ping: Pong\r\nTimestamp: ${epochSeconds(Date.now())}\r\n\r\n`);
        return;
      case 'coreshowchannels':
        this.write(client, this.coreShowChannels(actionId));
        return;
      case 'status':
        this.write(client, this.status(actionId, fields));
        return;
      case 'originate':
        this.write(client, `Response: Success\r\n${idLine}Message: Originate successfully queued\r\n\r\n`);
        return;
      default:
        this.write(client, `Response: Error\r\n${idLine}Message: Invalid/unknown command: ${name}. Use Action: ListCommands to show available commands.\r\n\r\n`);
    }
  }

  /**
   * The scripted step an action can claim. Asking `Status` for more variables than the recording did still gets
   * the recorded answer: the extra ones were unset on the recorded PBX, which Asterisk prints as
   * `Variable: NAME=(null)` (see MIXMONITOR_FILENAME in mid-call-connect), a line a client ignores anyway.
   */
  private matchFor(action: string, variables: string | undefined): string {
    const exact = matchKey(action, variables);
    const steps = this.replay?.session?.steps;
    if (!variables || !steps) return exact;
    const asked = new Set(variables.split(',').map((v) => v.trim()));
    for (const step of steps) {
      if (step.kind !== 'out' || step.action.toLowerCase() !== action) continue;
      const recorded = step.match.slice(step.match.indexOf('|') + 1);
      if (recorded && recorded.split(',').every((v) => asked.has(v.trim()))) return step.match;
    }
    return exact;
  }

  /** True when the action belongs to the script: consumed now, or held until the replay reaches it. */
  private offerToReplay(client: Client, action: string, match: string, actionId: string): boolean {
    const replay = this.replay;
    if (!replay || replay.finished || !replay.running) return false;
    const step = replay.session?.steps[replay.stepIndex];
    if (replay.waitTimer && step?.kind === 'out' && step.match === match) {
      clearTimeout(replay.waitTimer);
      replay.waitTimer = undefined;
      this.consumeStep(replay, step, client, actionId);
      this.pump(replay);
      return true;
    }
    // Keepalive Pings are never held: a held Ping would look like a dead link.
    if (action === 'ping' || replay.unclaimedSteps(match) <= 0) return false;
    let held = replay.early.get(match);
    if (!held) replay.early.set(match, (held = []));
    held.push({ client, actionId });
    return true;
  }

  private consumeStep(replay: Replay, step: OutStep, client: Client, actionId: string): void {
    replay.idMap.set(`${step.scope}|${step.actionId}`, { actionId, client });
    replay.stepIndex++;
    replay.anchorWall = Date.now();
    replay.anchorT = step.t;
  }

  private startSession(replay: Replay): void {
    const session = replay.session;
    if (!session) return;
    replay.running = true;
    replay.stepIndex = 0;
    replay.early.clear();
    replay.anchorWall = Date.now();
    replay.anchorT = session.t0;
    replay.baseEpochMs ??= Date.now() - session.t0;
    this.pump(replay);
  }

  /** Plays every step that is due, then sleeps until the next one (or waits for a scripted action). */
  private pump(replay: Replay): void {
    clearTimeout(replay.timer);
    replay.timer = undefined;
    const session = replay.session;
    if (!session || replay.finished) return;
    // Per connection, in recorded order: a scripted answer must not overtake or trail the broadcast events.
    const batches = new Map<Client, string[]>();
    const out = (to: Client, text: string) => {
      let list = batches.get(to);
      if (!list) batches.set(to, (list = []));
      list.push(text);
    };
    let paused = false;
    while (replay.stepIndex < session.steps.length) {
      const step = session.steps[replay.stepIndex];
      if (!step) break;
      if (step.kind === 'out') {
        const held = replay.early.get(step.match)?.shift();
        if (held) {
          this.consumeStep(replay, step, held.client, held.actionId);
          continue;
        }
        replay.waitTimer = setTimeout(() => {
          replay.waitTimer = undefined;
          replay.skipped.add(`${step.scope}|${step.actionId}`);
          replay.stepIndex++;
          replay.anchorWall = Date.now();
          replay.anchorT = step.t;
          this.pump(replay);
        }, replay.actionWaitMs);
        paused = true;
        break;
      }
      const due = replay.anchorWall + (step.t - replay.anchorT) / replay.speed;
      const wait = due - Date.now();
      if (wait > 1) {
        replay.timer = setTimeout(() => this.pump(replay), wait);
        paused = true;
        break;
      }
      replay.stepIndex++;
      replay.currentT = step.t;
      this.trackChannels(step);
      const key = step.actionId === undefined ? undefined : `${step.scope}|${step.actionId}`;
      if (key !== undefined && replay.skipped.has(key)) continue;
      const mapped = key === undefined ? undefined : replay.idMap.get(key);
      let raw = mapped ? replaceField(step.raw, 'ActionID', mapped.actionId) : step.raw;
      if (this.timestamps && (step.actionId === undefined || raw.startsWith('Event: OriginateResponse\r\n'))) {
        raw = this.stamp(raw, (replay.baseEpochMs ?? 0) + step.t);
      }
      if (mapped) out(mapped.client, raw);
      else for (const client of this.clients) if (client.authed) out(client, raw);
    }
    for (const [client, texts] of batches) if (this.clients.has(client)) this.write(client, texts.join(''));
    if (paused) return;
    // Session over: the next one (asterisk-restart) begins on a new connection, like after a real restart.
    replay.running = false;
    replay.sessionIndex++;
    if (replay.session) {
      replay.reconnectDrops = replay.rejectReconnects;
      for (const client of this.clients) client.socket.end();
      for (const client of this.clients) client.authed = false;
      this.channels.clear();
      return;
    }
    replay.finished = true;
    replay.resolveDone();
  }

  /** Inserts `Timestamp:` after the Privilege line (Asterisk's timestampevents position). */
  private stamp(raw: string, epochMs: number): string {
    if (!raw.startsWith('Event: ')) return raw;
    const line = `Timestamp: ${epochSeconds(epochMs)}\r\n`;
    const privilege = raw.indexOf('\r\nPrivilege: ');
    const after = privilege === -1 ? raw.indexOf('\r\n') + 2 : raw.indexOf('\r\n', privilege + 2) + 2;
    return raw.slice(0, after) + line + raw.slice(after);
  }

  /** Keeps the live channel view (for unscripted CoreShowChannels and Status) in step with the replayed events. */
  private trackChannels(step: InStep): void {
    if (!step.raw.startsWith('Event: ') || step.actionId !== undefined) return;
    const event = frameField(step.raw, 'Event');
    const uniqueid = frameField(step.raw, 'Uniqueid');
    if (uniqueid === undefined) return;
    if (event === 'Hangup') {
      this.channels.delete(uniqueid);
      return;
    }
    let channel = this.channels.get(uniqueid);
    if (!channel) {
      if (event !== 'Newchannel') return;
      channel = { fields: { Application: '', ApplicationData: '', BridgeId: '' }, createdT: step.t, vars: new Map() };
      this.channels.set(uniqueid, channel);
    }
    const fields = frameFields(step.raw);
    for (const key of CHANNEL_KEYS) if (fields[key] !== undefined) channel.fields[key] = fields[key];
    if (event === 'Newexten') {
      channel.fields['Application'] = fields['Application'] ?? '';
      channel.fields['ApplicationData'] = fields['AppData'] ?? '';
    } else if (event === 'BridgeEnter') {
      channel.fields['BridgeId'] = fields['BridgeUniqueid'] ?? '';
    } else if (event === 'BridgeLeave') {
      channel.fields['BridgeId'] = '';
    } else if (event === 'VarSet' && fields['Variable']) {
      channel.vars.set(fields['Variable'].replace(/^_{1,2}/, ''), fields['Value'] ?? '');
    }
  }

  /**
   * An unscripted `Status`: the live channels as Asterisk lists them (the recorded answers of mid-call-connect
   * show the shape), with one `Variable: NAME=value` line per asked variable — `(null)` when unset.
   */
  private status(actionId: string, fields: Record<string, string>): string {
    const id = actionId === '' ? '' : `ActionID: ${actionId}\r\n`;
    const asked = (fields['Variables'] ?? '').split(',').map((v) => v.trim()).filter(Boolean);
    const only = fields['Channel'];
    const now = this.replay?.currentT ?? 0;
    let text = `Response: Success\r\n${id}EventList: start\r\nMessage: Channel status will follow\r\n\r\n`;
    let items = 0;
    for (const channel of this.channels.values()) {
      if (only && channel.fields['Channel'] !== only) continue;
      items++;
      text += 'Event: Status\r\nPrivilege: Call\r\n';
      for (const key of CHANNEL_KEYS) text += `${key}: ${channel.fields[key] ?? ''}\r\n`;
      text += `BridgeID: ${channel.fields['BridgeId']}\r\nApplication: ${channel.fields['Application']}\r\nData: ${channel.fields['ApplicationData']}\r\n`;
      text += `Seconds: ${Math.floor(Math.max(0, now - channel.createdT) / 1000)}\r\n`;
      for (const name of asked) text += `Variable: ${name}=${channel.vars.get(name) ?? '(null)'}\r\n`;
      text += `${id}\r\n`;
    }
    return `${text}Event: StatusComplete\r\n${id}EventList: Complete\r\nListItems: ${items}\r\nItems: ${items}\r\n\r\n`;
  }

  private coreShowChannels(actionId: string): string {
    const id = actionId === '' ? '' : `ActionID: ${actionId}\r\n`;
    let text = `Response: Success\r\n${id}EventList: start\r\nMessage: Channels will follow\r\n\r\n`;
    const now = this.replay?.currentT ?? 0;
    for (const channel of this.channels.values()) {
      text += `Event: CoreShowChannel\r\n${id}`;
      for (const key of CHANNEL_KEYS) text += `${key}: ${channel.fields[key] ?? ''}\r\n`;
      text += `Application: ${channel.fields['Application']}\r\nApplicationData: ${channel.fields['ApplicationData']}\r\n`;
      text += `Duration: ${hms(now - channel.createdT)}\r\nBridgeId: ${channel.fields['BridgeId']}\r\n\r\n`;
    }
    return `${text}Event: CoreShowChannelsComplete\r\n${id}EventList: Complete\r\nListItems: ${this.channels.size}\r\n\r\n`;
  }
}
