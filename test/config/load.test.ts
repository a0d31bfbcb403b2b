import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { rawConfigSchema, type Config } from '../../src/config/schema.ts';
import { redact } from '../../src/log/redact.ts';
import { DaemonError } from '../../src/errors.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const examplePath = path.join(root, 'config/example.yaml');
const exampleEnv = {
  AMI_SECRET: 'ami-example-secret', B24_WEBHOOK_SECRET: 'webhook-example-secret', B24_APPLICATION_TOKEN: 'app-example-token',
  TELEGRAM_BOT_TOKEN: '123456:telegram-example-token',
};
const systemZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

const MINIMAL = `ami:
  username: admin
  secret: s3cret-minimal
bitrix24:
  webhook_url: https://example.bitrix24.ru/rest/1/abc123
  default_user_id: 1
`;

/** The E_CONFIG message parseConfig throws for text (fails the test if it does not throw). */
function errorOf(text: string, env: Record<string, string> = {}): string {
  try {
    parseConfig(text, 'config.yaml', { env });
  } catch (err) {
    expect(err).toBeInstanceOf(DaemonError);
    expect((err as DaemonError).code).toBe('E_CONFIG');
    return (err as Error).message;
  }
  throw new Error('expected parseConfig to throw');
}

const camel = (key: string) => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

describe('config/example.yaml', () => {
  test('loads cleanly, with ${VAR} references filled from the environment', () => {
    const config = loadConfig(examplePath, { env: exampleEnv });
    expect(config.ami).toHaveLength(1);
    expect(config.ami[0]!.secret).toBe('ami-example-secret');
    expect(config.ami[0]!.pbx.trunks).toEqual(['provider']);
    expect(config.pbx.trunks).toBeUndefined();
    expect(config.bitrix24.webhookUrl).toBe('https://example.bitrix24.ru/rest/1/webhook-example-secret/');
    expect(config.bitrix24.applicationToken).toBe('app-example-token');
    expect(config.customizations.dir).toBe(path.join(root, 'config/customizations'));
  });

  test('every key it sets exists in Config under its camelCase name', () => {
    const config = loadConfig(examplePath, { env: exampleEnv });
    const data = parseDocument(readFileSync(examplePath, 'utf8')).toJS() as Record<string, unknown>;
    data.ami = [data.ami];
    const missing: string[] = [];
    const walk = (yamlValue: unknown, configValue: unknown, at: string) => {
      if (Array.isArray(yamlValue)) {
        if (!Array.isArray(configValue)) return missing.push(at);
        if (yamlValue.some((v) => typeof v === 'object')) yamlValue.forEach((v, i) => walk(v, configValue[i], `${at}[${i}]`));
        return;
      }
      if (yamlValue !== null && typeof yamlValue === 'object') {
        for (const [key, value] of Object.entries(yamlValue)) {
          const target = (configValue as Record<string, unknown> | undefined)?.[camel(key)];
          if (target === undefined) missing.push(`${at}.${key}`);
          else walk(value, target, `${at}.${key}`);
        }
      }
    };
    walk(data, config, '');
    expect(missing).toEqual([]);
  });

  test('documents every key of the schema (commented-out optional keys count), and the oauth block loads', () => {
    // Uncomment `# key: value` lines (not prose) to see the optional keys the file shows but does not set.
    const text = readFileSync(examplePath, 'utf8')
      .split('\n')
      .map((line) => line.replace(/^(\s*)# (\s*(?:- )?[a-z_]+:(?: .*)?)$/, '$1$2'))
      .join('\n');
    const doc = parseDocument(text);
    const undocumented: string[] = [];
    const walk = (schema: Record<string, unknown>, yamlPath: Array<string | number>) => {
      if (schema.type === 'array' && (schema.items as Record<string, unknown>).type === 'object') {
        // A list of mappings is documented by one example entry (or, like `ami`, by a single mapping).
        const node = doc.getIn(yamlPath, true) as { items?: unknown[] } | undefined;
        return walk(schema.items as Record<string, unknown>, Array.isArray(node?.items) && doc.hasIn([...yamlPath, 0]) ? [...yamlPath, 0] : yamlPath);
      }
      const properties = schema.properties as Record<string, Record<string, unknown>> | undefined;
      for (const [key, sub] of Object.entries(properties ?? {})) {
        if (!doc.hasIn([...yamlPath, key])) undocumented.push([...yamlPath, key].join('.'));
        // ami[].pbx takes the top-level pbx keys, which the file documents there.
        else if ((sub.type === 'object' || sub.type === 'array') && !(yamlPath[0] === 'ami' && key === 'pbx')) walk(sub, [...yamlPath, key]);
      }
    };
    walk(rawConfigSchema.json as Record<string, unknown>, []);
    expect(undocumented).toEqual([]);

    doc.deleteIn(['bitrix24', 'webhook_url']);
    const config = parseConfig(doc.toString(), examplePath, { env: { ...exampleEnv, B24_CLIENT_SECRET: 'oauth-example-secret' } });
    expect(config.bitrix24.oauth).toEqual({
      clientId: 'local.0123456789abcd.12345678',
      clientSecret: 'oauth-example-secret',
      oauthServer: 'https://oauth.bitrix.info',
      portalUrl: 'https://example.bitrix24.ru',
    });
    expect(config.bitrix24.webhookUrl).toBeUndefined();
    expect(config.bitrix24.crmSource).toBe('CALL');
    expect(config.pbx.timezone).toBe('Europe/Moscow');
  });
});

describe('parseConfig', () => {
  test('applies every default to a minimal file', () => {
    const config = parseConfig(MINIMAL, '/etc/asterisk-bitrix24/config.yaml', { env: {} });
    const pbx = {
      extensionPattern: '^\\d{2,5}$',
      defaultCountry: 'RU',
      registerInternal: false,
      timezone: systemZone,
      recordings: {
        pbxDir: '/var/spool/asterisk/monitor',
        localDir: '/var/spool/asterisk/monitor',
        attach: true,
        readyTimeoutMs: 30000,
        uploadThresholdBytes: 5000000,
      },
    };
    const expected: Config = {
      ami: [{
        name: 'pbx', host: '127.0.0.1', port: 5038, username: 'admin', secret: 's3cret-minimal',
        keepaliveIntervalMs: 15000, keepaliveTimeoutMs: 5000, actionTimeoutMs: 10000, reconnectMaxDelayMs: 5000, pbx,
      }],
      bitrix24: {
        webhookUrl: 'https://example.bitrix24.ru/rest/1/abc123/',
        defaultUserId: 1,
        rateLimit: { perSecond: 2, burst: 50 },
        requestTimeoutMs: 30000,
        crmCreate: true,
        showCard: 'ringing',
        addToChat: true,
        userRefreshCron: '*/15 * * * *',
      },
      pbx,
      http: { host: '127.0.0.1', port: 8077, enabled: true },
      storage: { path: '/var/lib/asterisk-bitrix24/state.sqlite', busyTimeoutMs: 5000 },
      customizations: { dir: '/etc/asterisk-bitrix24/customizations', timeoutMs: 1000, poolSize: 1, watch: true },
      log: { level: 'info', format: 'text' },
      clickToCall: { channel: 'PJSIP/{extension}', context: 'from-internal', priority: 1, callerId: '{number}', ringTimeoutMs: 30000 },
      events: { mode: 'online', pollIntervalMs: 3000 },
      bizproc: [],
      crm: {
        search: false,
        prefer: ['contact', 'company', 'lead'],
        routeToResponsible: false,
        create: { incoming: 'bitrix', outgoing: 'bitrix' },
        title: '{direction} call {phone}',
        missedCalls: {
          createTask: false,
          owner: [{ kind: 'entity_responsible' }, { kind: 'last_rung' }, { kind: 'default' }],
          title: 'Missed call from {phone}',
          deadline: '+2h',
          callbackWindow: 86_400_000,
          closeOnCallback: true,
          notify: false,
        },
        registrationFilter: {
          allow: { extensions: [], trunks: [], dids: [], numbers: [] },
          deny: { extensions: [], trunks: [], dids: [], numbers: [] },
        },
        responsibleEndpoint: { cacheMs: 60000, timeoutMs: 1500 },
      },
    };
    expect(config).toEqual(expected);
  });

  test('the result is deep-frozen', () => {
    const config = parseConfig(MINIMAL, 'config.yaml', { env: {} });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.ami)).toBe(true);
    expect(Object.isFrozen(config.ami[0]!.pbx.recordings)).toBe(true);
    expect(() => {
      (config.ami[0] as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  test('a list of PBXes, each with its pbx block merged over the top-level one', () => {
    const config = parseConfig(`ami:
  - name: office
    username: a
    secret: secret-office
  - name: branch
    host: 10.0.0.2
    username: b
    secret: secret-branch
    pbx:
      trunks: [branch-sip]
      recordings:
        pbx_dir: /mnt/rec
bitrix24:
  webhook_url: https://example.bitrix24.ru/rest/1/abc123/
  default_user_id: 7
pbx:
  default_country: KZ
  recordings:
    attach: false
storage:
  path: state/db.sqlite
`, '/srv/b24/config.yaml', { env: {} });
    expect(config.ami.map((a) => a.name)).toEqual(['office', 'branch']);
    expect(config.ami[0]!.pbx).toEqual(config.pbx);
    expect(config.ami[1]!.pbx.trunks).toEqual(['branch-sip']);
    expect(config.ami[1]!.pbx.defaultCountry).toBe('KZ');
    expect(config.ami[1]!.pbx.recordings).toEqual({
      pbxDir: '/mnt/rec', localDir: '/mnt/rec', attach: false, readyTimeoutMs: 30000, uploadThresholdBytes: 5000000,
    });
    expect(config.pbx.recordings.pbxDir).toBe('/var/spool/asterisk/monitor');
    expect(config.storage.path).toBe('/srv/b24/state/db.sqlite');
  });

  test('${VAR} substitution: set, escaped with $$, and unset (an error naming the key)', () => {
    const config = parseConfig(MINIMAL.replace('s3cret-minimal', () => 'pre-${AMI_PW}-$${LITERAL}'), 'config.yaml', { env: { AMI_PW: 'xyz1' } });
    expect(config.ami[0]!.secret).toBe('pre-xyz1-${LITERAL}');
    expect(errorOf(MINIMAL.replace('s3cret-minimal', '${AMI_PW}'))).toBe('config.yaml:3: ami.secret: environment variable AMI_PW is not set');
  });

  test('registers the secrets with the redactor', () => {
    parseConfig(`ami:
  username: admin
  secret: ami-secret-7f3a
bitrix24:
  oauth:
    client_id: local.1
    client_secret: oauth-secret-91bc
  default_user_id: 1
  application_token: app-token-55de
`, 'config.yaml', { env: {} });
    expect(redact('a ami-secret-7f3a b oauth-secret-91bc c app-token-55de')).toBe('a *** b *** c ***');
  });

  test('a missing key points at its parent', () => {
    expect(errorOf(MINIMAL.replace('  default_user_id: 1\n', ''))).toBe('config.yaml:4: bitrix24: missing required key default_user_id');
    expect(errorOf('ami:\n  username: a\n  secret: b\n')).toBe('config.yaml:1: missing required key bitrix24');
  });

  test('a wrong type names the line and key', () => {
    expect(errorOf(MINIMAL.replace('  username: admin\n', '  username: admin\n  port: "5038"\n'))).toBe('config.yaml:3: ami.port: must be integer');
    expect(errorOf(MINIMAL + 'log:\n  level: loud\n')).toBe(
      'config.yaml:8: log.level: must be one of: error, warn, info, debug');
  });

  test('an unknown key is an error on its own line, in list form with the index', () => {
    const text = `ami:
  - username: a
    secret: b
    name: one
  - username: c
    secret: d
    name: two
    prot: 5038
${MINIMAL.slice(MINIMAL.indexOf('bitrix24'))}`;
    expect(errorOf(text)).toBe('config.yaml:8: ami[1].prot: unknown key (known keys: name, host, port, username, secret, '
      + 'keepalive_interval_ms, keepalive_timeout_ms, action_timeout_ms, reconnect_max_delay_ms, pbx)');
  });

  test('a per-PBX pbx block is checked like the top-level one', () => {
    const text = MINIMAL.replace('  secret: s3cret-minimal\n', '  secret: s3cret-minimal\n  pbx:\n    trunk: [a]\n    register_internal: "yes"\n    recordings: { attach: 1 }\n');
    expect(errorOf(text).split('\n')).toEqual([
      'config.yaml:5: ami.pbx.trunk: unknown key (known keys: trunks, extension_pattern, default_country, register_internal, timezone, recordings)',
      'config.yaml:6: ami.pbx.register_internal: must be boolean',
      'config.yaml:7: ami.pbx.recordings.attach: must be boolean',
    ]);
  });

  test('bad YAML gives file:line:col', () => {
    expect(errorOf('ami:\n  username: a\n  secret: b: c\n')).toBe('config.yaml:3:11: Nested mappings are not allowed in compact mappings');
    expect(errorOf('ami:\n  username: a\n  username: b\n')).toBe('config.yaml:3:3: Map keys must be unique');
  });

  test('an extension_pattern that does not compile', () => {
    expect(errorOf(MINIMAL + 'pbx:\n  extension_pattern: "^(\\\\d+$"\n')).toBe(
      'config.yaml:8: pbx.extension_pattern: is not a valid regular expression: Invalid regular expression: /^(\\d+$/: Unterminated group');
  });

  test('both webhook_url and oauth, or neither', () => {
    const both = MINIMAL.replace('  default_user_id', '  oauth: { client_id: a, client_secret: b }\n  default_user_id');
    expect(errorOf(both)).toBe('config.yaml:4: bitrix24: set either webhook_url or oauth, not both');
    const neither = MINIMAL.replace(/ {2}webhook_url.*\n/, '');
    expect(errorOf(neither)).toBe('config.yaml:4: bitrix24: missing required key webhook_url or oauth');
  });

  test('lists every problem, one per line, in file order', () => {
    const text = `ami:
  - username: a
    secret: b
  - username: c
    secret: d
    port: 0
bitrix24:
  webhook_url: ftp://example
  default_user_id: 0
  user_refresh_cron: every minute
pbx:
  default_country: XX
  timezone: Mars/Olympus
`;
    expect(errorOf(text).split('\n')).toEqual([
      'config.yaml:4: ami[1].name: duplicate PBX name "pbx" (also ami[0]); each PBX needs a unique name',
      'config.yaml:6: ami[1].port: must be >= 1',
      'config.yaml:8: bitrix24.webhook_url: must match pattern "^https?://"',
      'config.yaml:9: bitrix24.default_user_id: must be >= 1',
      'config.yaml:10: bitrix24.user_refresh_cron: is not a valid cron expression',
      'config.yaml:12: pbx.default_country: is not a country code libphonenumber knows',
      'config.yaml:13: pbx.timezone: is not an IANA time zone (e.g. Europe/Moscow)',
    ]);
  });

  test('ami must be a mapping or a list; an empty file is an error', () => {
    expect(errorOf(MINIMAL.replace(/ami:\n {2}username: admin\n {2}secret: s3cret-minimal\n/, 'ami: yes\n'))).toBe(
      'config.yaml:1: ami: must be a mapping or a list of mappings');
    expect(errorOf('# nothing\n')).toBe('config.yaml:1: the file is empty; it needs at least the ami and bitrix24 sections');
  });
});

describe('loadConfig', () => {
  test('resolves relative paths against the file, and names an unreadable file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'b24-config-'));
    try {
      const file = path.join(dir, 'config.yaml');
      writeFileSync(file, MINIMAL + 'customizations:\n  dir: hooks\n');
      expect(loadConfig(file, { env: {} }).customizations.dir).toBe(path.join(dir, 'hooks'));
      expect(() => loadConfig(path.join(dir, 'nope.yaml'))).toThrow(`${path.join(dir, 'nope.yaml')}: cannot read the configuration file: ENOENT`);
      writeFileSync(file, MINIMAL + 'http:\n  port: 99999\n');
      expect(() => loadConfig(file, { env: {} })).toThrow(`${file}:8: http.port: must be <= 65535`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
