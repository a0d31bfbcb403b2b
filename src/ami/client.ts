import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { DaemonError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { registerSecret } from '../log/redact.ts';
import { AmiParser } from './parser.ts';
import { serializeAction } from './message.ts';
import type { AmiActionFields, AmiMessage } from './message.ts';

export interface AmiClientOptions {
  /** Names this PBX in logs and in ActionIDs (default 'ami'). */
  name?: string;
  host: string;
  port: number;
  username: string;
  secret: string;
  /** Deadline for TCP connect + banner + Login answer (default 10 s). */
  connectTimeoutMs?: number;
  /** Default deadline for an action's whole answer, list events included (default 10 s). */
  actionTimeoutMs?: number;
  /** How often a Ping proves the link alive (default 15 s). */
  keepaliveIntervalMs?: number;
  /** A Ping unanswered this long means a dead (half-open) link: it is dropped and re-made (default 5 s). */
  keepaliveTimeoutMs?: number;
  /** Reconnect backoff: starts at minDelayMs, doubles per failed attempt up to maxDelayMs, with jitter; never gives up. */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number };
  /** The Login `Events:` mask (default 'on'). */
  events?: 'on' | 'off' | string;
}

export interface AmiActionResult {
  /** The ActionID the client assigned (later events such as OriginateResponse carry it). */
  actionId: string;
  response: AmiMessage;
  /** List actions (`EventList: start`): the items carrying this ActionID, in order, without the Complete event. */
  events: AmiMessage[];
  /** List actions: the closing `…Complete` event (ListItems etc.). */
  complete?: AmiMessage;
}

export interface AmiActionOptions {
  timeoutMs?: number;
  /**
   * Called with the ActionID right before the action is written: events that carry it (OriginateResponse) can
   * arrive in the same socket read as the response, before the returned promise settles.
   */
  onActionId?: (actionId: string) => void;
}

export interface AmiConnectedInfo {
  banner: string;
  /** 0 for the first login of this client, then +1 for every re-login. */
  reconnects: number;
}

export interface AmiDisconnectedInfo {
  reason: string;
}

export interface AmiKeepaliveInfo {
  rttMs: number;
  at: number;
}

export interface AmiClientEvents {
  connected: [AmiConnectedInfo];
  disconnected: [AmiDisconnectedInfo];
  event: [AmiMessage];
  keepalive: [AmiKeepaliveInfo];
  error: [DaemonError];
}

interface Pending {
  readonly action: string;
  readonly actionId: string;
  readonly resolve: (result: AmiActionResult) => void;
  readonly reject: (error: DaemonError) => void;
  readonly timer: NodeJS.Timeout;
  /** Set once a list action's `EventList: start` response arrived; items are collected until Complete. */
  response?: AmiMessage;
  readonly events: AmiMessage[];
}

/** One TCP connection attempt; handlers compare against `client.conn` so a stale socket's late callbacks do nothing. */
interface Connection {
  readonly socket: net.Socket;
  readonly parser: AmiParser;
  banner?: string;
  loginSent: boolean;
  loggedIn: boolean;
  closeReason?: string;
  closed: boolean;
  handshakeTimer?: NodeJS.Timeout;
}

interface ReadyWaiter {
  resolve: (info: AmiConnectedInfo) => void;
  reject: (error: DaemonError) => void;
}

/**
 * AMI client: one TCP connection at a time to one Asterisk, with Login, action/response correlation by ActionID
 * (list actions collected up to their Complete event), a Ping keepalive that detects half-open links, and
 * reconnection with capped exponential backoff that never gives up.
 *
 * Events: 'connected' after every successful Login, 'disconnected' when a logged-in connection ends,
 * 'event' for every AMI event (list items included), 'keepalive' per answered Ping, 'error' for login refusals
 * (E_AMI_AUTH) and malformed frames (E_AMI_PROTOCOL). Listener exceptions are logged, never thrown into the
 * socket code; 'error' without a listener is logged instead of crashing the process.
 */
export class AmiClient extends EventEmitter<AmiClientEvents> {
  /** Epoch ms of the last proof that the link is alive (Login or an answered Ping); 0 before the first. */
  lastKeepaliveOkAt = 0;
  private readonly opts: Required<Omit<AmiClientOptions, 'reconnect' | 'name'>> & { name: string };
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly log: Logger;
  private readonly idPrefix: string;
  private actionSeq = 0;
  private readonly pending = new Map<string, Pending>();
  private conn: Connection | undefined;
  private running = false;
  private failedAttempts = 0;
  private logins = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private lastConnected: AmiConnectedInfo | undefined;
  private readyWaiters: ReadyWaiter[] = [];
  private closeWaiters: Array<() => void> = [];

  constructor(options: AmiClientOptions, log: Logger) {
    super();
    const name = options.name ?? 'ami';
    this.opts = {
      name,
      host: options.host,
      port: options.port,
      username: options.username,
      secret: options.secret,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      actionTimeoutMs: options.actionTimeoutMs ?? 10_000,
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? 15_000,
      keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? 5_000,
      events: options.events ?? 'on',
    };
    this.minDelayMs = options.reconnect?.minDelayMs ?? 500;
    this.maxDelayMs = Math.max(this.minDelayMs, options.reconnect?.maxDelayMs ?? 30_000);
    this.log = log.child({ component: 'ami', pbx: name });
    // Random per client so that ActionIDs of two clients (or two daemon runs) never collide.
    this.idPrefix = `${name}-${randomBytes(3).toString('hex')}-`;
    registerSecret(options.secret);
  }

  get isConnected(): boolean {
    return this.conn?.loggedIn === true;
  }

  /** Starts connecting (and reconnecting forever until stop()). Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.failedAttempts = 0;
    this.connect();
  }

  /**
   * Resolves when the client is logged in (at once if it is now). Rejects with the next login refusal
   * (E_AMI_AUTH) or when the client is stopped (E_AMI_CONNECT); the client itself keeps retrying.
   */
  ready(): Promise<AmiConnectedInfo> {
    if (this.isConnected && this.lastConnected) return Promise.resolve(this.lastConnected);
    if (!this.running) return Promise.reject(new DaemonError('E_AMI_CONNECT', `AMI client ${this.opts.name} is not started`));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** Logs off (when logged in), closes the socket, rejects pending actions, clears every timer. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.settleReady(undefined, new DaemonError('E_AMI_CONNECT', `AMI client ${this.opts.name} stopped`));
    const conn = this.conn;
    if (!conn) return;
    conn.closeReason ??= 'stopped';
    if (conn.loggedIn) {
      const timeoutMs = Math.min(this.opts.actionTimeoutMs, 1000);
      await this.send(conn, 'Logoff', {}, timeoutMs).catch(() => undefined);
    }
    if (conn.closed) return;
    const closed = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    conn.socket.destroy();
    await closed;
  }

  /**
   * Sends an action and resolves with its answer. Rejects with E_AMI_ACTION (Response: Error, or CR/LF in a
   * name or value: nothing is sent then), E_AMI_TIMEOUT, or E_AMI_CONNECT (not connected now, or the
   * connection dropped before the answer). Actions are never queued while disconnected.
   */
  action(name: string, fields: AmiActionFields = {}, opts: AmiActionOptions = {}): Promise<AmiActionResult> {
    const conn = this.conn;
    if (!conn || !conn.loggedIn) {
      return Promise.reject(new DaemonError('E_AMI_CONNECT', `${name} not sent: AMI ${this.opts.name} is not connected`));
    }
    return this.send(conn, name, fields, opts.timeoutMs ?? this.opts.actionTimeoutMs, opts.onActionId);
  }

  private send(conn: Connection, action: string, fields: AmiActionFields, timeoutMs: number, onActionId?: (id: string) => void): Promise<AmiActionResult> {
    return new Promise((resolve, reject) => this.request(conn, action, fields, timeoutMs, resolve, reject, onActionId));
  }

  /** Sends an action; `resolve`/`reject` run synchronously when the answer is parsed (or at timeout). */
  private request(
    conn: Connection,
    action: string,
    fields: AmiActionFields,
    timeoutMs: number,
    resolve: (result: AmiActionResult) => void,
    reject: (error: DaemonError) => void,
    onActionId?: (actionId: string) => void,
  ): void {
    const actionId = `${this.idPrefix}${++this.actionSeq}`;
    let frame: string;
    try {
      frame = serializeAction(action, actionId, fields);
    } catch (error) {
      reject(error as DaemonError);
      return;
    }
    const timer = setTimeout(() => {
      this.pending.delete(actionId);
      reject(new DaemonError('E_AMI_TIMEOUT', `${action} got no answer within ${timeoutMs} ms (ActionID ${actionId})`));
    }, timeoutMs);
    this.pending.set(actionId, { action, actionId, resolve, reject, timer, events: [] });
    onActionId?.(actionId);
    conn.socket.write(frame);
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    const { host, port } = this.opts;
    const parser = new AmiParser({
      onBanner: (banner) => this.onBanner(conn, banner),
      onError: (error) => {
        this.log.warn(error.message);
        this.emitError(error);
      },
    });
    const socket = net.connect({ host, port });
    const conn: Connection = { socket, parser, loginSent: false, loggedIn: false, closed: false };
    this.conn = conn;
    conn.handshakeTimer = setTimeout(() => {
      this.drop(conn, `no AMI banner and Login answer within ${this.opts.connectTimeoutMs} ms`);
    }, this.opts.connectTimeoutMs);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (conn !== this.conn) return;
      for (const msg of parser.push(chunk)) {
        if (conn !== this.conn) return;
        this.onMessage(msg);
      }
    });
    socket.on('error', (error) => {
      conn.closeReason ??= `socket error: ${error.message}`;
    });
    socket.on('close', () => this.onClose(conn));
  }

  private onBanner(conn: Connection, banner: string): void {
    conn.banner = banner;
    if (conn.loginSent || conn !== this.conn) return;
    conn.loginSent = true;
    const { username, secret, events, connectTimeoutMs } = this.opts;
    // Synchronous handlers, not a promise: the events that arrive in the same chunk as the Login answer must
    // come after 'connected' (consumers reconcile on 'connected').
    this.request(
      conn,
      'Login',
      { Username: username, Secret: secret, Events: events },
      connectTimeoutMs,
      () => this.onLoggedIn(conn),
      (error: DaemonError) => {
        if (conn !== this.conn) return;
        if (error.code === 'E_AMI_ACTION') {
          // Asterisk closes the socket itself after a refusal; the backoff is not reset, so a wrong secret
          // retries ever more slowly instead of hammering the PBX.
          const refusal = new DaemonError('E_AMI_AUTH', `AMI ${this.opts.name}: Asterisk at ${this.opts.host}:${this.opts.port} refused Login as "${username}": ${error.message.replace(/^Login failed: /, '')}`);
          this.log.error(refusal.message);
          this.emitError(refusal);
          this.settleReady(undefined, refusal);
          this.drop(conn, 'login refused');
        } else {
          this.drop(conn, `Login failed: ${error.message}`);
        }
      },
    );
  }

  private onLoggedIn(conn: Connection): void {
    if (conn !== this.conn) return;
    clearTimeout(conn.handshakeTimer);
    conn.loggedIn = true;
    this.failedAttempts = 0;
    this.lastKeepaliveOkAt = Date.now();
    const info: AmiConnectedInfo = { banner: conn.banner ?? '', reconnects: this.logins++ };
    this.lastConnected = info;
    this.log.info(`connected to ${this.opts.host}:${this.opts.port} (${info.banner}, reconnects ${info.reconnects})`);
    this.scheduleKeepalive(conn);
    this.settleReady(info);
    this.safeEmit('connected', info);
  }

  private onMessage(msg: AmiMessage): void {
    const actionId = msg.fields['ActionID'];
    const pending = actionId === undefined ? undefined : this.pending.get(actionId);
    if (msg.kind === 'response') {
      if (!pending || pending.response) {
        this.log.debug(`response without a waiting action (ActionID ${actionId ?? 'none'}): ${msg.name}`);
        return;
      }
      if (msg.name === 'Error' || msg.name === 'Failure') {
        const why = msg.fields['Message'] ?? msg.name;
        this.finish(pending, new DaemonError('E_AMI_ACTION', `${pending.action} failed: ${why}`));
      } else if (msg.fields['EventList']?.toLowerCase() === 'start') {
        pending.response = msg;
      } else {
        this.finish(pending, { actionId: pending.actionId, response: msg, events: [] });
      }
      return;
    }
    this.safeEmit('event', msg);
    if (!pending) {
      if (msg.name === 'Shutdown') this.log.warn(`Asterisk is shutting down (Restart: ${msg.fields['Restart'] ?? '?'})`);
      return;
    }
    if (msg.fields['EventList']?.toLowerCase() === 'complete' && pending.response) {
      this.finish(pending, { actionId: pending.actionId, response: pending.response, events: pending.events, complete: msg });
    } else {
      pending.events.push(msg);
    }
  }

  private finish(pending: Pending, outcome: AmiActionResult | DaemonError): void {
    clearTimeout(pending.timer);
    this.pending.delete(pending.actionId);
    if (outcome instanceof DaemonError) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  private scheduleKeepalive(conn: Connection): void {
    clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = setTimeout(() => this.ping(conn), this.opts.keepaliveIntervalMs);
  }

  private ping(conn: Connection): void {
    if (conn !== this.conn || !conn.loggedIn) return;
    const sentAt = Date.now();
    const timeoutMs = this.opts.keepaliveTimeoutMs;
    this.send(conn, 'Ping', {}, timeoutMs).then(
      () => {
        if (conn !== this.conn) return;
        const at = Date.now();
        this.lastKeepaliveOkAt = at;
        this.scheduleKeepalive(conn);
        this.safeEmit('keepalive', { rttMs: at - sentAt, at });
      },
      (error: DaemonError) => {
        if (conn !== this.conn) return;
        if (error.code === 'E_AMI_TIMEOUT') {
          this.log.warn(`keepalive Ping unanswered for ${timeoutMs} ms: dropping the connection`);
          this.drop(conn, `keepalive Ping got no answer within ${timeoutMs} ms`);
        } else if (error.code === 'E_AMI_ACTION') {
          // Asterisk answered (even with an error): the link is alive.
          this.lastKeepaliveOkAt = Date.now();
          this.scheduleKeepalive(conn);
        }
      },
    );
  }

  private drop(conn: Connection, reason: string): void {
    conn.closeReason ??= reason;
    conn.socket.destroy();
  }

  private onClose(conn: Connection): void {
    conn.closed = true;
    clearTimeout(conn.handshakeTimer);
    for (const resolve of this.closeWaiters.splice(0)) resolve();
    if (conn !== this.conn) return;
    this.conn = undefined;
    clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
    const reason = conn.closeReason ?? 'connection closed by Asterisk';
    for (const pending of [...this.pending.values()]) {
      this.finish(pending, new DaemonError('E_AMI_CONNECT', `${pending.action} aborted: AMI connection lost (${reason})`));
    }
    if (conn.loggedIn) {
      this.log.warn(`disconnected from ${this.opts.host}:${this.opts.port}: ${reason}`);
      this.safeEmit('disconnected', { reason });
    } else if (this.running) {
      this.log.warn(`cannot connect to ${this.opts.host}:${this.opts.port}: ${reason}`);
    }
    if (this.running) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const base = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** Math.min(this.failedAttempts, 30));
    this.failedAttempts++;
    // Jitter in [base/2, base): several daemons reconnecting after an Asterisk restart do not stampede.
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.log.info(`reconnecting in ${delay} ms (attempt ${this.failedAttempts})`);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private settleReady(info: AmiConnectedInfo | undefined, error?: DaemonError): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const waiter of waiters) {
      if (info) waiter.resolve(info);
      else if (error) waiter.reject(error);
    }
  }

  private emitError(error: DaemonError): void {
    if (this.listenerCount('error') > 0) this.safeEmit('error', error);
  }

  private safeEmit<K extends keyof AmiClientEvents>(name: K, ...args: AmiClientEvents[K]): void {
    try {
      (this.emit as (event: K, ...a: AmiClientEvents[K]) => boolean)(name, ...args);
    } catch (error) {
      this.log.error(`a '${String(name)}' listener threw: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
