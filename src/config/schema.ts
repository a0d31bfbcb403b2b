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
  reconnect_max_delay_ms: withDefault(ms(), 5000),
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

/** A list of things a call is matched against (registration_filter.allow / deny). Numbers are regular expressions. */
const callMatchSchema = t.object({
  extensions: withDefault(t.array(t.string({ minLength: 1 })), []),
  trunks: withDefault(t.array(t.string({ minLength: 1 })), []),
  dids: withDefault(t.array(t.string({ minLength: 1 })), []),
  numbers: withDefault(t.array(t.string({ minLength: 1 })), []),
});

const entityCreateMode = () => t.enum(['bitrix', 'lead', 'contact', 'deal', 'none']);
/** `+30m`, `+2h`, `+1d`, `today 18:00`, `tomorrow 10:00` (PBX time zone). */
const DEADLINE_PATTERN = '^(\\+\\d+[mhd]|(today|tomorrow) ([01]?\\d|2[0-3]):[0-5]\\d)$';
const DURATION_PATTERN = '^\\d+[smhd]$';

const crmSchema = t.object({
  search: withDefault(t.boolean(), false),
  prefer: withDefault(t.array(t.enum(['contact', 'company', 'lead']), { minItems: 1, uniqueItems: true }), ['contact', 'company', 'lead']),
  route_to_responsible: withDefault(t.boolean(), false),
  create: withDefault(t.object({
    incoming: withDefault(entityCreateMode(), 'bitrix'),
    outgoing: withDefault(entityCreateMode(), 'bitrix'),
  }), {}),
  title: withDefault(t.string({ minLength: 1 }), '{direction} call {phone}'),
  source_id: optional(t.string({ minLength: 1 })),
  missed_calls: withDefault(t.object({
    create_task: withDefault(t.boolean(), false),
    owner: withDefault(t.array(t.string({ pattern: '^(entity_responsible|last_rung|default|fixed:[1-9]\\d*)$' }), { minItems: 1 }),
      ['entity_responsible', 'last_rung', 'default']),
    created_by: optional(t.integer({ minimum: 1 })),
    title: withDefault(t.string({ minLength: 1 }), 'Missed call from {phone}'),
    deadline: withDefault(t.string({ pattern: DEADLINE_PATTERN }), '+2h'),
    callback_window: withDefault(t.string({ pattern: DURATION_PATTERN }), '24h'),
    close_on_callback: withDefault(t.boolean(), true),
    notify: withDefault(t.boolean(), false),
    telegram: optional(t.object({
      bot_token: required(t.string({ minLength: 1 })),
      api_url: withDefault(t.string({ pattern: '^https?://' }), 'https://api.telegram.org'),
      chat_id: optional(t.string({ minLength: 1 })),
      users: withDefault(t.array(t.object({
        user_id: required(t.integer({ minimum: 1 })),
        chat_id: required(t.string({ minLength: 1 })),
      })), []),
    })),
  }), {}),
  registration_filter: withDefault(t.object({
    allow: withDefault(callMatchSchema, {}),
    deny: withDefault(callMatchSchema, {}),
  }), {}),
  responsible_endpoint: withDefault(t.object({
    cache_ms: withDefault(t.integer({ minimum: 0 }), 60000),
    timeout_ms: withDefault(ms(), 1500),
  }), {}),
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
    busy_timeout_ms: withDefault(ms(), 5000),
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
  crm: withDefault(crmSchema, {}),
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

export type EntityCreateMode = 'bitrix' | 'lead' | 'contact' | 'deal' | 'none';
/** One step of the missed-call owner policy, tried in order. */
export type MissedOwnerStep = { readonly kind: 'entity_responsible' | 'last_rung' | 'default' } | { readonly kind: 'fixed'; readonly userId: number };

export interface CallMatchConfig {
  readonly extensions: readonly string[];
  readonly trunks: readonly string[];
  readonly dids: readonly string[];
  /** Regular expression sources (compiled by the loader's check). */
  readonly numbers: readonly string[];
}

/** The `crm:` section: entity search and creation, missed-call tasks, registration filter, /responsible. */
export interface CrmConfig {
  readonly search: boolean;
  readonly prefer: ReadonlyArray<'contact' | 'company' | 'lead'>;
  readonly routeToResponsible: boolean;
  readonly create: { readonly incoming: EntityCreateMode; readonly outgoing: EntityCreateMode };
  /** Title of created entities: {phone}, {direction} (Incoming/Outgoing), {did}. */
  readonly title: string;
  readonly sourceId?: string;
  readonly missedCalls: {
    readonly createTask: boolean;
    readonly owner: readonly MissedOwnerStep[];
    readonly createdBy?: number;
    /** {phone}, {did}, {time}. */
    readonly title: string;
    readonly deadline: string;
    /** Milliseconds (the file says e.g. `24h`). */
    readonly callbackWindow: number;
    readonly closeOnCallback: boolean;
    readonly notify: boolean;
    readonly telegram?: {
      readonly botToken: string;
      readonly apiUrl: string;
      readonly chatId?: string;
      readonly users: ReadonlyArray<{ readonly userId: number; readonly chatId: string }>;
    };
  };
  readonly registrationFilter: { readonly allow: CallMatchConfig; readonly deny: CallMatchConfig };
  readonly responsibleEndpoint: { readonly cacheMs: number; readonly timeoutMs: number };
}

export interface Config {
  /** Always a list (a single `ami:` mapping becomes one entry). */
  readonly ami: readonly AmiConfig[];
  readonly bitrix24: Bitrix24Config;
  /** The top-level PBX settings (each `ami[i].pbx` already has its overrides merged in). */
  readonly pbx: PbxConfig;
  readonly http: { readonly host: string; readonly port: number; readonly enabled: boolean };
  /** `path` is absolute (relative paths are resolved against the config file's folder), or ':memory:'. */
  /** busyTimeoutMs: how long a write waits for another holder of the database (CLI, backup) before it fails. */
  readonly storage: { readonly path: string; readonly busyTimeoutMs: number };
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
  /** CRM behaviour beyond registering calls (src/crm). */
  readonly crm: CrmConfig;
}
