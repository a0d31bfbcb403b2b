/**
 * `check --config FILE`: what a PBX admin runs after editing the config. Prints one line per check with ✔ or ✘
 * and what to do about a failure; exits 0 only when everything passed.
 */
import { AmiClient } from '../ami/client.ts';
import { fetchExtensionMap } from '../bitrix/users.ts';
import { loadConfig } from '../config/load.ts';
import { silentLogger } from '../log/logger.ts';
import { openBitrix } from './bitrix-from-config.ts';
import { boundEvents, CALL_EVENTS } from './event-bind.ts';

const REQUIRED_SCOPES = ['telephony', 'user'];

export async function checkCommand(configPath: string, out: NodeJS.WritableStream): Promise<number> {
  let failures = 0;
  const line = (ok: boolean, what: string, detail = '') => {
    if (!ok) failures++;
    out.write(`${ok ? '✔' : '✘'} ${what}${detail ? ` — ${detail}` : ''}\n`);
  };
  const config = loadConfig(configPath);
  line(true, `config ${configPath} is valid`, `${config.ami.length} PBX(es)`);
  const log = silentLogger();

  for (const ami of config.ami) {
    const client = new AmiClient({ name: ami.name, host: ami.host, port: ami.port, username: ami.username, secret: ami.secret,
      connectTimeoutMs: 5000, reconnect: { minDelayMs: 60_000 } }, log);
    const failed = new Promise<Error>((resolve) => client.once('error', resolve));
    client.start();
    const result = await Promise.race([client.ready().then(() => undefined), failed, sleep(6000).then(() => new Error('no answer within 6 s'))]);
    if (result) {
      line(false, `AMI ${ami.name} at ${ami.host}:${ami.port}`, `${result.message} (manager.conf: user ${ami.username}, permit/deny, read=all)`);
    } else {
      const res = await client.action('Ping').catch((e: Error) => e);
      line(!(res instanceof Error), `AMI ${ami.name} at ${ami.host}:${ami.port}: login as ${ami.username}`, res instanceof Error ? res.message : 'Ping answered');
    }
    await client.stop();
  }

  const b = config.bitrix24;
  const { client, close } = openBitrix(config);
  try {
    const scope = await client.call<string[]>('scope');
    const granted = Array.isArray(scope.result) ? scope.result : [];
    const missing = REQUIRED_SCOPES.filter((s) => !granted.includes(s));
    line(missing.length === 0, `Bitrix24 credentials (${b.webhookUrl !== undefined ? 'incoming webhook' : 'local application'})`,
      missing.length ? `missing scopes: ${missing.join(', ')} (add them to the webhook / application)` : `scopes: ${granted.join(', ')}`);
    const map = await fetchExtensionMap(client, log);
    line(map.size > 0, `extension → user map: ${map.size} user(s) with an internal number`,
      map.size ? [...map.entries()].map(([ext, u]) => `${ext}=${u.name || u.userId}`).join(', ') : 'set "Internal phone" (UF_PHONE_INNER) on the users in Bitrix24');
    const defaultUser = await client.call<unknown[]>('user.get', { FILTER: { ID: b.defaultUserId } });
    line(Array.isArray(defaultUser.result) && defaultUser.result.length > 0, `bitrix24.default_user_id ${b.defaultUserId} exists`);
    if (b.webhookUrl !== undefined) {
      // Bitrix24 lets only applications bind events; with a webhook they are set up in the portal (outgoing webhook).
      out.write('• click-to-call events: with an incoming webhook, add an outgoing webhook for ONEXTERNALCALLSTART in the portal (README)\n');
    } else {
      const bound = await boundEvents(client).catch(() => undefined);
      const unbound = bound ? CALL_EVENTS.filter((e) => !bound.some((x) => x.event === e)) : CALL_EVENTS;
      line(unbound.length === 0, 'click-to-call events bound', unbound.length ? `not bound: ${unbound.join(', ')} (run event-bind)`
        : bound!.map((x) => `${x.event} → ${x.handler}${x.offline ? ' (offline)' : ''}`).join(', '));
    }
  } catch (err) {
    line(false, 'Bitrix24 REST', (err as Error).message);
  } finally {
    close();
  }
  out.write(failures === 0 ? 'all checks passed\n' : `${failures} check(s) failed\n`);
  return failures === 0 ? 0 : 1;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
