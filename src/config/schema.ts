import { t, required, optional, withDefault, type Infer } from './schema-builder.ts';

/**
 * The configuration file's schema: the one place that says which keys exist, their types and their defaults.
 * config/example.yaml documents every key (a test loads it); `Config` below is the camelCase, normalized shape
 * the rest of the daemon reads, and load.ts maps one to the other in a single function.
 */

const ms = () => t.integer({ minimum: 1 });

const recordingsSchema = t.object({
  pbx_dir: withDefault(t.string({ minLength: 1 }), '/var/spool/asterisk/monitor'),
  // No schema default: it falls back to the *effective* pbx_dir, which a per-PBX block may have changed.
  local_dir: optional(t.string({ minLength: 1 })),
  attach: withDefault(t.boolean(), true),
  ready_timeout_ms: withDefault(ms(), 30000),
  upload_threshold_bytes: withDefault(t.integer({ minimum: 0 }), 5000000),
});

export const pbxSchema = t.object({
  trunks: optional(t.array(t.string({ minLength: 1 }), { uniqueItems: true })),
  extension_pattern: withDefault(t.string({ minLength: 1 }), '^\\d{2,5}$'),
  default_country: withDefault(t.string({ pattern: '^[A-Z]{2}$' }), 'RU'),
  register_internal: withDefault(t.boolean(), false),
  timezone: optional(t.string({ minLength: 1 })),
  recordings: withDefault(recordingsSchema, {}),
});

const amiSchema = t.object({
  name: withDefault(t.string({ pattern: '^[A-Za-z0-9_.-]+$' }), 'pbx'),
  host: withDefault(t.string({ minLength: 1 }), '127.0.0.1'),
  port: withDefault(t.integer({ minimum: 1, maximum: 65535 }), 5038),
  username: required(t.string({ minLength: 1 })),
  secret: required(t.string({ minLength: 1 })),
  keepalive_interval_ms: withDefault(ms(), 15000),
  keepalive_timeout_ms: withDefault(ms(), 5000),
  action_timeout_ms: withDefault(ms(), 10000),
  reconnect_max_delay_ms: withDefault(ms(), 30000),
  pbx: optional(t.partial(pbxSchema)),
});

const bitrix24Schema = t.object({
  // Exactly one of webhook_url / oauth: checked by the loader (a oneOf would report both branches' errors).
  webhook_url: optional(t.string({ pattern: '^https?://' })),
  oauth: optional(t.object({
    client_id: required(t.string({ minLength: 1 })),
    client_secret: required(t.string({ minLength: 1 })),
    oauth_server: withDefault(t.string({ pattern: '^https?://' }), 'https://oauth.bitrix.info'),
    portal_url: optional(t.string({ pattern: '^https?://' })),
  })),
  default_user_id: required(t.integer({ minimum: 1 })),
  application_token: optional(t.string({ minLength: 1 })),
  rate_limit: withDefault(t.object({
    per_second: withDefault(t.number({ exclusiveMinimum: 0 }), 2),
    burst: withDefault(t.integer({ minimum: 1 }), 50),
  }), {}),
  request_timeout_ms: withDefault(ms(), 30000),
  crm_create: withDefault(t.boolean(), true),
  crm_source: optional(t.string({ minLength: 1 })),
  show_card: withDefault(t.enum(['ringing', 'answered', 'never']), 'ringing'),
  add_to_chat: withDefault(t.boolean(), true),
  user_refresh_cron: withDefault(t.string({ minLength: 1 }), '*/15 * * * *'),
});

const clickToCallSchema = t.object({
  channel: withDefault(t.string({ minLength: 1 }), 'PJSIP/{extension}'),
  context: withDefault(t.string({ minLength: 1 }), 'from-internal'),
  priority: withDefault(t.integer({ minimum: 1 }), 1),
  caller_id: withDefault(t.string({ minLength: 1 }), '{number}'),
  ring_timeout_ms: withDefault(ms(), 30000),
});

const eventsSchema = t.object({
  mode: withDefault(t.enum(['online', 'offline']), 'online'),
  handler_url: optional(t.string({ pattern: '^https?://' })),
  poll_interval_ms: withDefault(ms(), 3000),
});

const stageMapSchema = t.object({
  category_id: withDefault(t.integer({ minimum: 0 }), 0),
  positive: optional(t.string({ minLength: 1 })),
  negative: optional(t.string({ minLength: 1 })),
  neutral: optional(t.string({ minLength: 1 })),
});

const robotWebhookSchema = t.object({
  token: required(t.string({ minLength: 8 })),
  stages: withDefault(t.array(stageMapSchema), []),
});

const bizprocSchema = t.object({
  event: required(t.enum(['incoming', 'outgoing', 'missed', 'answered', 'recording'])),
  template_id: required(t.integer({ minimum: 1 })),
});

/** The whole file, after the loader turned a single `ami:` mapping into a one-element list. */
export const rawConfigSchema = t.object({
  ami: required(t.array(amiSchema, { minItems: 1 })),
  bitrix24: required(bitrix24Schema),
  pbx: withDefault(pbxSchema, {}),
  http: withDefault(t.object({
    host: withDefault(t.string({ minLength: 1 }), '127.0.0.1'),
    port: withDefault(t.integer({ minimum: 0, maximum: 65535 }), 8077),
    enabled: withDefault(t.boolean(), true),
  }), {}),
  storage: withDefault(t.object({
    path: withDefault(t.string({ minLength: 1 }), '/var/lib/asterisk-bitrix24/state.sqlite'),
  }), {}),
  customizations: withDefault(t.object({
    dir: withDefault(t.string({ minLength: 1 }), './customizations'),
    timeout_ms: withDefault(ms(), 1000),
    pool_size: withDefault(t.integer({ minimum: 1 }), 1),
    watch: withDefault(t.boolean(), true),
  }), {}),
  click_to_call: withDefault(clickToCallSchema, {}),
  events: withDefault(eventsSchema, {}),
  robot_webhook: optional(robotWebhookSchema),
  bizproc: withDefault(t.array(bizprocSchema), []),
  log: withDefault(t.object({
    level: withDefault(t.enum(['error', 'warn', 'info', 'debug']), 'info'),
    format: withDefault(t.enum(['text', 'json']), 'text'),
  }), {}),
});

/** The validated file: snake_case, defaults applied. Only load.ts reads it. */
export type RawConfig = Infer<typeof rawConfigSchema>;

// ---- The shape the daemon reads (deep-frozen, camelCase) ----

export interface RecordingsConfig {
  /** Where Asterisk writes recordings (MixMonitor file names are relative to / under this). */
  readonly pbxDir: string;
  /** Where this daemon finds the same files (differs when the PBX directory is mounted elsewhere). */
  readonly localDir: string;
  readonly attach: boolean;
  readonly readyTimeoutMs: number;
  readonly uploadThresholdBytes: number;
}

export interface PbxConfig {
  /** Trunk endpoint names; undefined → every non-Local channel whose endpoint is not an extension is a trunk. */
  readonly trunks?: readonly string[];
  /** Source of a RegExp (it compiles: the loader checked). */
  readonly extensionPattern: string;
  /** ISO 3166 alpha-2, for numbers dialled without a country code. */
  readonly defaultCountry: string;
  readonly registerInternal: boolean;
  /** IANA zone; the system's zone when the file does not set one. */
  readonly timezone: string;
  readonly recordings: RecordingsConfig;
}

export interface AmiConfig {
  /** Unique among the PBXes; keys call state and log lines. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly secret: string;
  readonly keepaliveIntervalMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly actionTimeoutMs: number;
  readonly reconnectMaxDelayMs: number;
  /** The effective PBX settings for this PBX: its own `pbx:` block merged over the top-level one. */
  readonly pbx: PbxConfig;
}

export interface OAuthConfig {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly oauthServer: string;
  readonly portalUrl?: string;
}

/** Exactly one of `webhookUrl` / `oauth` is set; test either to narrow. */
export type Bitrix24Auth =
  | { readonly webhookUrl: string; readonly oauth?: undefined }
  | { readonly webhookUrl?: undefined; readonly oauth: OAuthConfig };

export type Bitrix24Config = Bitrix24Auth & {
  readonly defaultUserId: number;
  readonly applicationToken?: string;
  readonly rateLimit: { readonly perSecond: number; readonly burst: number };
  readonly requestTimeoutMs: number;
  readonly crmCreate: boolean;
  readonly crmSource?: string;
  readonly showCard: 'ringing' | 'answered' | 'never';
  readonly addToChat: boolean;
  readonly userRefreshCron: string;
};

export interface Config {
  /** Always a list (a single `ami:` mapping becomes one entry). */
  readonly ami: readonly AmiConfig[];
  readonly bitrix24: Bitrix24Config;
  /** The top-level PBX settings (each `ami[i].pbx` already has its overrides merged in). */
  readonly pbx: PbxConfig;
  readonly http: { readonly host: string; readonly port: number; readonly enabled: boolean };
  /** `path` is absolute (relative paths are resolved against the config file's folder), or ':memory:'. */
  readonly storage: { readonly path: string };
  /** `dir` is absolute (resolved against the config file's folder). */
  readonly customizations: { readonly dir: string; readonly timeoutMs: number; readonly poolSize: number; readonly watch: boolean };
  readonly log: { readonly level: 'error' | 'warn' | 'info' | 'debug'; readonly format: 'text' | 'json' };
  /** Originate for Bitrix24's click-to-call: `{extension}` and `{number}` are filled in per call. */
  readonly clickToCall: {
    readonly channel: string;
    readonly context: string;
    readonly priority: number;
    readonly callerId: string;
    readonly ringTimeoutMs: number;
  };
  /** How Bitrix24 events reach the daemon: posted to http (online) or polled with event.offline.get (offline). */
  readonly events: { readonly mode: 'online' | 'offline'; readonly handlerUrl?: string; readonly pollIntervalMs: number };
  /** The robot webhook (/webhook/callback); absent when not configured. */
  readonly robotWebhook?: {
    readonly token: string;
    readonly stages: ReadonlyArray<{ readonly categoryId: number; readonly positive?: string; readonly negative?: string; readonly neutral?: string }>;
  };
  /** Business processes started on call events. */
  readonly bizproc: ReadonlyArray<{ readonly event: 'incoming' | 'outgoing' | 'missed' | 'answered' | 'recording'; readonly templateId: number }>;
}
