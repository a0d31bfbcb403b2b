/**
 * The composition root: config in, a running daemon out. Builds one store, one Bitrix24 client (webhook or local
 * OAuth app), one outbox, one hook runner, and one PbxSession per configured PBX. Nothing here is a module-level
 * singleton: tests run several daemons in one process.
 */
import { AmiClient } from '../ami/client.ts';
import type { BitrixAuth } from '../bitrix/auth.ts';
import { BatchingCaller } from '../bitrix/batching-caller.ts';
import { BitrixClient } from '../bitrix/client.ts';
import { LeakyBucket } from '../bitrix/limiter.ts';
import { OAuthAuth } from '../bitrix/oauth-auth.ts';
import type { Tokens, TokenStore } from '../bitrix/token-store.ts';
import { WebhookAuth } from '../bitrix/webhook-auth.ts';
import type { Intent } from '../calls/intents.ts';
import type { Call } from '../calls/model.ts';
import type { Config } from '../config/schema.ts';
import { CrmService } from '../crm/crm-service.ts';
import { HookRunner } from '../hooks/runner.ts';
import type { Logger } from '../log/logger.ts';
import { Outbox } from '../outbox/outbox.ts';
import { openStore, type Store } from '../store/db.ts';
import { Dispatcher, mergeCardOps, type IntentOp } from './dispatcher.ts';
import { BitrixEvents } from './bitrix-events.ts';
import { ClickToCall } from './click-to-call.ts';
import { HttpServer } from './http-server.ts';
import { FollowUps, isFollowUp } from './follow-ups.ts';
import { OfflineEvents } from './offline-events.ts';
import { RobotWebhook } from './robot-webhook.ts';
import { attachOps, type Ops } from '../ops/ops.ts';
import { PbxSession } from './pbx-session.ts';
import { UserDirectory } from './user-directory.ts';

const OUTBOX_RETENTION_MS = 3 * 24 * 3_600_000;
const CRM_RETENTION_MS = 30 * 24 * 3_600_000;

/** OAuth tokens live in the state database, next to the calls they serve. */
export class KvTokenStore implements TokenStore {
  readonly #store: Store;
  constructor(store: Store) {
    this.#store = store;
  }
  load(): Tokens | undefined {
    return this.#store.getKv<Tokens>('bitrix24.oauth-tokens');
  }
  save(tokens: Tokens): void {
    this.#store.setKv('bitrix24.oauth-tokens', tokens);
  }
}

export interface DaemonOptions {
  config: Config;
  log: Logger;
  /** Observers for the demo and tests. */
  onIntents?: (pbx: string, intents: Intent[], calls: Record<string, Call>) => void;
  /** Start without AMI connections (replay). */
  withoutAmi?: boolean;
  /**
   * The in-memory state can no longer be trusted (the state database failed a write and then a read): the
   * caller should stop the daemon and exit, so that it starts again from what was saved. Default: logged only.
   */
  onFatal?: (err: Error) => void;
}

export class Daemon {
  readonly config: Config;
  readonly log: Logger;
  readonly store: Store;
  readonly auth: BitrixAuth;
  readonly client: BitrixClient;
  /** What the call flow sends through: requests made together leave as one `batch`. */
  readonly rest: BatchingCaller;
  readonly limiter: LeakyBucket;
  readonly users: UserDirectory;
  readonly hooks: HookRunner;
  readonly outbox: Outbox;
  readonly sessions: PbxSession[] = [];
  readonly amiClients: AmiClient[] = [];
  readonly http: HttpServer | undefined;
  readonly clickToCall: ClickToCall | undefined;
  readonly events: BitrixEvents;
  readonly followUps: FollowUps;
  readonly crm: CrmService;
  readonly offlineEvents: OfflineEvents | undefined;
  /** /healthz, /metrics (src/ops); set by start(). */
  ops: Ops | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;
  #stopCheckpoints: (() => void) | undefined;

  constructor(o: DaemonOptions) {
    const { config, log } = o;
    this.config = config;
    this.log = log;
    this.store = openStore(config.storage.path, { busyTimeoutMs: config.storage.busyTimeoutMs });
    const b = config.bitrix24;
    this.auth = b.webhookUrl !== undefined
      ? new WebhookAuth(b.webhookUrl)
      : new OAuthAuth({
        clientId: b.oauth.clientId, clientSecret: b.oauth.clientSecret, oauthServer: b.oauth.oauthServer,
        store: new KvTokenStore(this.store), logger: log,
      });
    this.limiter = new LeakyBucket({ ratePerSec: b.rateLimit.perSecond, burst: b.rateLimit.burst });
    this.client = new BitrixClient(this.auth, this.limiter, log, { timeoutMs: b.requestTimeoutMs });
    this.rest = new BatchingCaller(this.client);
    this.users = new UserDirectory(this.client, this.store, log, b.userRefreshCron);
    this.hooks = new HookRunner({
      dir: config.customizations.dir, timeoutMs: config.customizations.timeoutMs, poolSize: config.customizations.poolSize,
      watch: config.customizations.watch, log,
    });
    const pbx = config.pbx;
    this.crm = new CrmService({
      client: this.rest, hooks: this.hooks, store: this.store, users: this.users, log, config: config.crm,
      defaultUserId: b.defaultUserId, timezone: pbx.timezone, bitrixCrmCreate: b.crmCreate, ...(b.crmSource ? { crmSource: b.crmSource } : {}),
    });
    const dispatcher = new Dispatcher({
      crm: this.crm,
      client: this.rest,
      users: this.users, hooks: this.hooks, log, defaultUserId: b.defaultUserId,
      crmCreate: b.crmCreate, addToChat: b.addToChat, defaultCountry: pbx.defaultCountry, timezone: pbx.timezone,
      recordings: pbx.recordings, ...(b.crmSource ? { crmSource: b.crmSource } : {}),
    });
    this.followUps = new FollowUps({
      store: this.store, config, client: this.rest, log, crm: this.crm, hasHook: (hook) => this.hooks.has(hook),
    });
    this.outbox = new Outbox(this.store, {
      handler: (op, prior) => (isFollowUp(op.payload) ? this.followUps.run(op.payload, prior) : dispatcher.handle(op.payload as IntentOp, prior)),
      merge: mergeCardOps, mergeable: (op) => op.kind === 'show' || op.kind === 'hide',
      // Many calls' requests in flight at once (still one per call): together they fill batches of up to 50.
      concurrency: 50,
      // Deal stage moves, business processes and activity updates follow the request that triggers them, in its
      // call's group, queued atomically with its delivery.
      followUps: (op, result) => this.followUps.after(op, result),
      log,
    });
    for (const ami of config.ami) {
      const client = o.withoutAmi ? undefined : new AmiClient({
        name: ami.name, host: ami.host, port: ami.port, username: ami.username, secret: ami.secret,
        keepaliveIntervalMs: ami.keepaliveIntervalMs, keepaliveTimeoutMs: ami.keepaliveTimeoutMs,
        actionTimeoutMs: ami.actionTimeoutMs, reconnect: { maxDelayMs: ami.reconnectMaxDelayMs },
      }, log.child({ pbx: ami.name }));
      if (client) this.amiClients.push(client);
      this.sessions.push(new PbxSession({
        name: ami.name, store: this.store, outbox: this.outbox, log,
        machine: {
          extensionPattern: ami.pbx.extensionPattern, registerInternal: ami.pbx.registerInternal, showCard: b.showCard,
          ...(ami.pbx.trunks ? { trunks: ami.pbx.trunks } : {}),
        },
        ...(client ? { ami: client } : {}),
        ...(o.onIntents ? { onIntents: (intents, calls) => o.onIntents!(ami.name, intents, calls) } : {}),
        ...(o.onFatal ? { onFatal: o.onFatal } : {}),
      }));
    }
    this.http = config.http.enabled && !o.withoutAmi ? new HttpServer({ daemon: this, log }) : undefined;
    // Click-to-call rings phones through the first PBX (several PBXes: the first one owns the agents' phones).
    const firstAmi = this.amiClients[0];
    const firstSession = this.sessions[0];
    this.clickToCall = firstAmi && firstSession
      ? new ClickToCall({
        session: firstSession, ami: firstAmi, users: this.users, hooks: this.hooks, config: config.clickToCall,
        actionTimeoutMs: config.ami[0]!.actionTimeoutMs, log,
      })
      : undefined;
    this.events = new BitrixEvents({
      clickToCall: this.clickToCall, client: this.client, defaultUserId: b.defaultUserId, timezone: pbx.timezone, log,
      tokens: async () => [b.applicationToken, this.auth instanceof OAuthAuth ? (await this.auth.tokens())?.applicationToken : undefined],
    });
    if (this.http) {
      this.events.attach(this.http);
      this.http.route('GET', '/responsible', this.crm.responsibleHandler);
    }
    if (this.http && config.robotWebhook) {
      new RobotWebhook({
        config: config.robotWebhook, client: this.client, clickToCall: this.clickToCall, users: this.users, followUps: this.followUps,
        timezone: pbx.timezone, log,
      }).attach(this.http);
    }
    this.offlineEvents = config.events.mode === 'offline' ? new OfflineEvents({ client: this.client, events: this.events, store: this.store, intervalMs: config.events.pollIntervalMs, log }) : undefined;
  }

  async start(): Promise<void> {
    await this.hooks.start();
    await this.http?.start();
    this.ops = attachOps(this);
    await this.users.start().catch((err: Error) => this.log.warn(`user directory: ${err.message}`));
    this.outbox.start();
    this.#stopCheckpoints = this.store.startCheckpoints();
    // Delivered requests are kept a few days (a long call's finish needs its register's result), then pruned.
    this.#pruneTimer = setInterval(() => {
      try {
        const n = this.outbox.prune(OUTBOX_RETENTION_MS, this.sessions.flatMap((s) => s.activeGroups()));
        if (n > 0) this.log.info(`outbox: pruned ${n} delivered request(s) older than 3 days`);
        // Created entities and missed-call tasks: well past any callback window after 30 days.
        this.crm.prune(CRM_RETENTION_MS);
      } catch (err) {
        this.log.error(`outbox prune failed: ${(err as Error).message}`, { code: 'E_STORE' });
      }
    }, 3_600_000).unref();
    for (const s of this.sessions) s.start();
    this.offlineEvents?.start();
    this.log.info(`daemon started: ${this.sessions.length} PBX(es), outbox depth ${this.outbox.depth()}`);
  }

  /** SIGTERM: stop taking events, commit what was read, let in-flight requests finish, close. */
  async stop(): Promise<void> {
    clearInterval(this.#pruneTimer);
    this.#stopCheckpoints?.();
    this.ops?.close();
    await this.http?.stop();
    // Requests waiting for the rate limit (a method blocked for minutes) must not hold up SIGTERM: the outbox
    // stops taking work, the limiter lets its waiters go (the outbox leaves theirs pending for the next start,
    // an offline poll gives up), and requests already sent finish.
    const outboxStopped = this.outbox.stop();
    this.limiter.close();
    await this.offlineEvents?.stop();
    for (const s of this.sessions) await s.stop();
    await outboxStopped;
    this.users.stop();
    await this.hooks.stop();
    this.client.close();
    this.store.close();
    this.log.info('daemon stopped');
  }
}
