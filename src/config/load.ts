import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { validate as isValidCron } from 'node-cron';
import { isSupportedCountry } from 'libphonenumber-js';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { DaemonError } from '../errors.ts';
import { registerSecret } from '../log/redact.ts';
import type { DeepPartial } from './schema-builder.ts';
import { substituteEnv, type EnvProblem } from './env.ts';
import { displayPath, lineOf, type YamlPath } from './yaml-positions.ts';
import { rawConfigSchema, type Config, type CrmConfig, type MissedOwnerStep, type PbxConfig, type RawConfig } from './schema.ts';

export interface ParseOptions {
  /** Where `${NAME}` references are looked up; process.env by default. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Reads, validates and normalizes the config file. Throws DaemonError('E_CONFIG') listing every problem, one per line. */
export function loadConfig(file: string, options: ParseOptions = {}): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DaemonError('E_CONFIG', `${file}: cannot read the configuration file: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(text, file, options);
}

/**
 * Same as loadConfig for text already in hand. `fileName` prefixes every message (`config.yaml:7: ami.port: …`)
 * and is the folder relative paths (customizations.dir, storage.path) are resolved against.
 */
export function parseConfig(text: string, fileName: string, options: ParseOptions = {}): Config {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false });
  if (doc.errors.length) {
    throw configError(doc.errors.map((err) => {
      const pos = counter.linePos(err.pos[0]);
      return `${fileName}:${pos.line}:${pos.col}: ${err.message}`;
    }));
  }
  if (doc.contents === null) throw configError([`${fileName}:1: the file is empty; it needs at least the ami and bitrix24 sections`]);

  const envProblems: EnvProblem[] = [];
  const data = substituteEnv(doc.toJS({ maxAliasCount: 100 }), options.env ?? process.env, envProblems);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw configError([`${fileName}:1: the file must be a mapping of sections (ami, bitrix24, pbx, …)`]);
  }
  // A single PBX may be written as one mapping; validate it as a one-element list, and report its keys without
  // the invented [0].
  const record = data as Record<string, unknown>;
  const amiWrapped = isPlainObject(record.ami);
  if (amiWrapped) record.ami = [record.ami];
  const toYamlPath = (p: YamlPath): YamlPath => (amiWrapped && p[0] === 'ami' ? [p[0], ...p.slice(2)] : p);

  const problems: Array<{ path: YamlPath; message: string }> = [...envProblems];
  const validate = compiledSchema();
  if (!validate(record)) for (const err of validate.errors ?? []) problems.push(toProblem(err, toYamlPath));
  for (const p of semanticProblems(record)) problems.push({ path: toYamlPath(p.path), message: p.message });

  if (problems.length) {
    const lines = problems
      .map((p) => ({ line: lineOf(doc as Document, counter, p.path), key: displayPath(p.path), message: p.message }))
      .sort((a, b) => a.line - b.line)
      .map((p) => `${fileName}:${p.line}: ${p.key ? p.key + ': ' : ''}${p.message}`);
    throw configError([...new Set(lines)]);
  }

  const raw = record as RawConfig;
  registerSecret(...raw.ami.map((a) => a.secret), raw.bitrix24.webhook_url, raw.bitrix24.oauth?.client_secret, raw.bitrix24.application_token,
    raw.crm.missed_calls.telegram?.bot_token);
  return deepFreeze(toConfig(raw, path.dirname(path.resolve(fileName))));
}

/** The single snake_case → camelCase mapping, plus normalization (per-PBX merge, resolved paths, auth union). */
function toConfig(raw: RawConfig, baseDir: string): Config {
  const systemZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const pbx = toPbx(raw.pbx, undefined, systemZone);
  const b = raw.bitrix24;
  const auth = b.webhook_url !== undefined
    ? { webhookUrl: b.webhook_url.endsWith('/') ? b.webhook_url : b.webhook_url + '/' }
    : {
        oauth: {
          clientId: b.oauth!.client_id,
          clientSecret: b.oauth!.client_secret,
          oauthServer: b.oauth!.oauth_server,
          ...(b.oauth!.portal_url !== undefined ? { portalUrl: b.oauth!.portal_url } : {}),
        },
      };
  return {
    ami: raw.ami.map((a) => ({
      name: a.name,
      host: a.host,
      port: a.port,
      username: a.username,
      secret: a.secret,
      keepaliveIntervalMs: a.keepalive_interval_ms,
      keepaliveTimeoutMs: a.keepalive_timeout_ms,
      actionTimeoutMs: a.action_timeout_ms,
      reconnectMaxDelayMs: a.reconnect_max_delay_ms,
      pbx: a.pbx ? toPbx(raw.pbx, a.pbx, systemZone) : pbx,
    })),
    bitrix24: {
      ...auth,
      defaultUserId: b.default_user_id,
      ...(b.application_token !== undefined ? { applicationToken: b.application_token } : {}),
      rateLimit: { perSecond: b.rate_limit.per_second, burst: b.rate_limit.burst },
      requestTimeoutMs: b.request_timeout_ms,
      crmCreate: b.crm_create,
      ...(b.crm_source !== undefined ? { crmSource: b.crm_source } : {}),
      showCard: b.show_card,
      addToChat: b.add_to_chat,
      userRefreshCron: b.user_refresh_cron,
    },
    pbx,
    http: { host: raw.http.host, port: raw.http.port, enabled: raw.http.enabled },
    storage: {
      path: raw.storage.path === ':memory:' ? ':memory:' : path.resolve(baseDir, raw.storage.path),
      busyTimeoutMs: raw.storage.busy_timeout_ms,
    },
    customizations: {
      dir: path.resolve(baseDir, raw.customizations.dir),
      timeoutMs: raw.customizations.timeout_ms,
      poolSize: raw.customizations.pool_size,
      watch: raw.customizations.watch,
    },
    log: { level: raw.log.level, format: raw.log.format },
    clickToCall: {
      channel: raw.click_to_call.channel,
      context: raw.click_to_call.context,
      priority: raw.click_to_call.priority,
      callerId: raw.click_to_call.caller_id,
      ringTimeoutMs: raw.click_to_call.ring_timeout_ms,
    },
    events: {
      mode: raw.events.mode,
      pollIntervalMs: raw.events.poll_interval_ms,
      ...(raw.events.handler_url !== undefined ? { handlerUrl: raw.events.handler_url } : {}),
    },
    ...(raw.robot_webhook ? {
      robotWebhook: {
        token: raw.robot_webhook.token,
        stages: raw.robot_webhook.stages.map((st) => ({
          categoryId: st.category_id,
          ...(st.positive !== undefined ? { positive: st.positive } : {}),
          ...(st.negative !== undefined ? { negative: st.negative } : {}),
          ...(st.neutral !== undefined ? { neutral: st.neutral } : {}),
        })),
      },
    } : {}),
    bizproc: raw.bizproc.map((b) => ({ event: b.event, templateId: b.template_id })),
    crm: toCrm(raw.crm),
  };
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `24h` → milliseconds (the schema's pattern guarantees the shape). */
export function durationMs(text: string): number {
  return Number(text.slice(0, -1)) * (DURATION_UNIT_MS[text.slice(-1)] ?? 0);
}

function toCrm(c: RawConfig['crm']): CrmConfig {
  const match = (m: RawConfig['crm']['registration_filter']['allow']) => ({
    extensions: m.extensions, trunks: m.trunks, dids: m.dids, numbers: m.numbers,
  });
  const mc = c.missed_calls;
  const tg = mc.telegram;
  return {
    search: c.search,
    prefer: c.prefer as CrmConfig['prefer'],
    routeToResponsible: c.route_to_responsible,
    create: { incoming: c.create.incoming, outgoing: c.create.outgoing },
    title: c.title,
    ...(c.source_id !== undefined ? { sourceId: c.source_id } : {}),
    missedCalls: {
      createTask: mc.create_task,
      owner: mc.owner.map((step): MissedOwnerStep => step.startsWith('fixed:')
        ? { kind: 'fixed', userId: Number(step.slice('fixed:'.length)) }
        : { kind: step as 'entity_responsible' | 'last_rung' | 'default' }),
      ...(mc.created_by !== undefined ? { createdBy: mc.created_by } : {}),
      title: mc.title,
      deadline: mc.deadline,
      callbackWindow: durationMs(mc.callback_window),
      closeOnCallback: mc.close_on_callback,
      notify: mc.notify,
      ...(tg ? {
        telegram: {
          botToken: tg.bot_token,
          apiUrl: tg.api_url.replace(/\/+$/, ''),
          ...(tg.chat_id !== undefined ? { chatId: tg.chat_id } : {}),
          users: tg.users.map((u) => ({ userId: u.user_id, chatId: u.chat_id })),
        },
      } : {}),
    },
    registrationFilter: { allow: match(c.registration_filter.allow), deny: match(c.registration_filter.deny) },
    responsibleEndpoint: { cacheMs: c.responsible_endpoint.cache_ms, timeoutMs: c.responsible_endpoint.timeout_ms },
  };
}

type RawPbx = RawConfig['pbx'];

function toPbx(base: RawPbx, override: DeepPartial<RawPbx> | undefined, systemZone: string): PbxConfig {
  const m = { ...base, ...override, recordings: { ...base.recordings, ...override?.recordings } };
  const trunks = m.trunks;
  return {
    ...(trunks !== undefined ? { trunks } : {}),
    extensionPattern: m.extension_pattern,
    defaultCountry: m.default_country,
    registerInternal: m.register_internal,
    timezone: m.timezone ?? systemZone,
    recordings: {
      pbxDir: m.recordings.pbx_dir,
      localDir: m.recordings.local_dir ?? m.recordings.pbx_dir,
      attach: m.recordings.attach,
      readyTimeoutMs: m.recordings.ready_timeout_ms,
      uploadThresholdBytes: m.recordings.upload_threshold_bytes,
    },
  };
}

let validator: ValidateFunction | undefined;
/** Compiled once per process: the compiled function is pure (defaults are written into the data it is given). */
function compiledSchema(): ValidateFunction {
  validator ??= new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true }).compile(rawConfigSchema.json);
  return validator;
}

function toProblem(err: ErrorObject, toYamlPath: (p: YamlPath) => YamlPath): { path: YamlPath; message: string } {
  const at = toYamlPath(err.instancePath.split('/').slice(1).map((s) => {
    const segment = s.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^\d+$/.test(segment) ? Number(segment) : segment;
  }));
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'required':
      return { path: at, message: `missing required key ${String(params.missingProperty)}` };
    case 'additionalProperties': {
      const known = Object.keys((err.parentSchema?.properties ?? {}) as object).join(', ');
      return { path: [...at, String(params.additionalProperty)], message: `unknown key (known keys: ${known})` };
    }
    case 'enum':
      return { path: at, message: `must be one of: ${(params.allowedValues as string[]).join(', ')}` };
    case 'type':
      if (at.length === 1 && at[0] === 'ami') return { path: at, message: 'must be a mapping or a list of mappings' };
      return { path: at, message: err.message ?? 'has the wrong type' };
    default:
      return { path: at, message: err.message ?? `fails ${err.keyword}` };
  }
}

/** Rules JSON Schema cannot say well. Runs on possibly invalid data, so every value's type is checked first. */
function semanticProblems(data: Record<string, unknown>): Array<{ path: YamlPath; message: string }> {
  const out: Array<{ path: YamlPath; message: string }> = [];
  const b = data.bitrix24;
  if (isPlainObject(b)) {
    if (b.webhook_url !== undefined && b.oauth !== undefined) out.push({ path: ['bitrix24'], message: 'set either webhook_url or oauth, not both' });
    if (b.webhook_url === undefined && b.oauth === undefined) out.push({ path: ['bitrix24'], message: 'missing required key webhook_url or oauth' });
    if (typeof b.webhook_url === 'string' && !URL.canParse(b.webhook_url)) out.push({ path: ['bitrix24', 'webhook_url'], message: 'is not a valid URL' });
    if (typeof b.user_refresh_cron === 'string' && !isValidCron(b.user_refresh_cron)) {
      out.push({ path: ['bitrix24', 'user_refresh_cron'], message: 'is not a valid cron expression' });
    }
  }
  checkPbx(data.pbx, ['pbx'], out);
  checkCrm(data.crm, out);
  if (Array.isArray(data.ami)) {
    const seen = new Map<string, number>();
    data.ami.forEach((entry: unknown, i) => {
      if (!isPlainObject(entry)) return;
      checkPbx(entry.pbx, ['ami', i, 'pbx'], out);
      if (typeof entry.name !== 'string') return;
      const first = seen.get(entry.name);
      if (first === undefined) seen.set(entry.name, i);
      else out.push({ path: ['ami', i, 'name'], message: `duplicate PBX name "${entry.name}" (also ami[${first}]); each PBX needs a unique name` });
    });
  }
  return out;
}

/** registration_filter number patterns must compile. */
function checkCrm(crm: unknown, out: Array<{ path: YamlPath; message: string }>): void {
  const filter = isPlainObject(crm) ? crm.registration_filter : undefined;
  if (!isPlainObject(filter)) return;
  for (const list of ['allow', 'deny'] as const) {
    const block = filter[list];
    const numbers = isPlainObject(block) ? block.numbers : undefined;
    if (!Array.isArray(numbers)) continue;
    numbers.forEach((pattern: unknown, i) => {
      if (typeof pattern !== 'string') return;
      try {
        new RegExp(pattern);
      } catch (err) {
        out.push({ path: ['crm', 'registration_filter', list, 'numbers', i], message: `is not a valid regular expression: ${(err as Error).message}` });
      }
    });
  }
}

function checkPbx(pbx: unknown, at: YamlPath, out: Array<{ path: YamlPath; message: string }>): void {
  if (!isPlainObject(pbx)) return;
  if (typeof pbx.extension_pattern === 'string') {
    try {
      new RegExp(pbx.extension_pattern);
    } catch (err) {
      out.push({ path: [...at, 'extension_pattern'], message: `is not a valid regular expression: ${(err as Error).message}` });
    }
  }
  if (typeof pbx.default_country === 'string' && /^[A-Z]{2}$/.test(pbx.default_country) && !isSupportedCountry(pbx.default_country)) {
    out.push({ path: [...at, 'default_country'], message: 'is not a country code libphonenumber knows' });
  }
  if (typeof pbx.timezone === 'string' && pbx.timezone !== '' && !isTimeZone(pbx.timezone)) {
    out.push({ path: [...at, 'timezone'], message: 'is not an IANA time zone (e.g. Europe/Moscow)' });
  }
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function configError(lines: string[]): DaemonError {
  return new DaemonError('E_CONFIG', lines.join('\n'));
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}
