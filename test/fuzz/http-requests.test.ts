/**
 * Fuzzing the HTTP side: mutated requests to every endpoint of the real daemon (a separate process) over raw
 * TCP — wrong methods, odd and huge paths, malformed percent-encodings, bodies that are huge, truncated, not
 * JSON or random bytes, broken chunked encodings, oversized headers, and plain garbage. The daemon never
 * crashes, never answers 5xx, answers the malformed ones with a 4xx, logs them (E_WEBHOOK), and no response
 * carries a secret.
 */
import { afterEach, expect, test } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { AMI_SECRET } from '../support/e2e.ts';
import { freePort, startProcessFakes, waitFor } from '../ops/support.ts';
import { rng } from './mutate.ts';
import { killIfAlive, spawnDaemon } from '../support/cli.ts';

const REQUESTS = 1500;
const APP_TOKEN = 'app-token-fuzz-0123456789';
let cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

/** Writes raw bytes, half-closes, and collects whatever comes back until the server closes. */
function raw(port: number, data: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => undefined); // a reset after the answer (body still being sent) is fine
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.setTimeout(10_000, () => socket.destroy());
    socket.end(data);
  });
}

const ENDPOINTS = ['/healthz', '/metrics', '/bitrix24/install', '/bitrix24/events', '/', '/nope', '/healthz/', '//metrics',
  '/../../etc/passwd', '/%ZZ', '/%00', '/bitrix24/install?%E0%A4%A', `/${'a'.repeat(20_000)}`, '/metrics?name[]=1&name[x]=2'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'CONNECT', 'FOO', 'G@T'];

function mutatedRequest(r: () => number): { kind: string; data: Buffer } {
  const pick = <T>(l: readonly T[]) => l[Math.floor(r() * l.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
  const path = pick(ENDPOINTS);
  const method = pick(METHODS);
  const bodies: Array<[string, string, Buffer]> = [
    ['form', 'application/x-www-form-urlencoded', Buffer.from(`event=ONEXTERNALCALLSTART&auth[application_token]=${r() < 0.5 ? 'wrong' : ''}&data[USER_ID]=1&%%%=%ZZ`)],
    ['json', 'application/json', Buffer.from('{"event": "ONAPPINSTALL", "auth": {"access_token": 1, ')],
    ['json-array', 'application/json', Buffer.from('[1,2,3]')],
    ['random', pick(['application/octet-stream', 'text/plain', 'application/json', 'multipart/form-data; boundary=x']), bytes(Math.floor(r() * 4000))],
    ['huge', 'application/x-www-form-urlencoded', Buffer.alloc(200_000 + Math.floor(r() * 800_000), 'a=1&')],
    ['install-partial', 'application/x-www-form-urlencoded', Buffer.from('AUTH_ID=x&AUTH_EXPIRES=zz&member_id=&status=L&auth[access_token]=')],
  ];
  const kinds = ['wellformed', 'wellformed', 'wellformed', 'truncatedBody', 'chunkedGarbage', 'headerOverflow', 'badHeader', 'garbage', 'noVersion', 'lfOnly'];
  const kind = pick(kinds);
  const [bodyKind, type, body] = pick(bodies);
  const head = (extra: string[] = [], length = body.length) => Buffer.from(
    [`${method} ${path} HTTP/1.1`, 'Host: daemon', `Content-Type: ${type}`, `Content-Length: ${length}`, 'Connection: close', ...extra, '', ''].join('\r\n'), 'latin1');
  switch (kind) {
    case 'wellformed': return { kind: `${kind}/${bodyKind}`, data: Buffer.concat([head(), body]) };
    case 'truncatedBody': return { kind, data: Buffer.concat([head([], body.length + 100), body]) };
    case 'chunkedGarbage': return { kind, data: Buffer.from(`POST ${path} HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZ\r\n${'x'.repeat(10)}\r\n-1\r\n\r\n`) };
    case 'headerOverflow': return { kind, data: head([`X-Big: ${'b'.repeat(70_000)}`]) };
    case 'badHeader': return { kind, data: Buffer.concat([Buffer.from(`GET ${path} HTTP/1.1\r\nHost: d\r\nX\u0001Bad: \u0000v\r\n\r\n`, 'latin1')]) };
    case 'garbage': return { kind, data: bytes(1 + Math.floor(r() * 3000)) };
    case 'noVersion': return { kind, data: Buffer.from(`${method} ${path}\r\n\r\n`) };
    default: return { kind, data: Buffer.from(`${method} ${path} HTTP/1.1\nHost: d\nConnection: close\n\n`) };
  }
}

test(`${REQUESTS} mutated HTTP requests to every endpoint: no crash, no 5xx, 4xx for the malformed, logged, no secret in a response`, async () => {
  const { dir, bitrix, ami } = await startProcessFakes('ab24-hfuzz-', cleanup);
  const port = await freePort();
  const config = join(dir, 'config.yaml');
  // A local application: /bitrix24/install is live (a webhook config answers it with a plain 404).
  writeFileSync(config, `
ami: { host: 127.0.0.1, port: ${ami.port}, username: bx24, secret: ${AMI_SECRET} }
bitrix24:
  oauth: { client_id: ${bitrix.clientId}, client_secret: ${bitrix.clientSecret}, oauth_server: "${bitrix.baseUrl}" }
  default_user_id: 1
  application_token: ${APP_TOKEN}
http: { host: 127.0.0.1, port: ${port} }
storage: { path: ${join(dir, 'state.sqlite')} }
customizations: { dir: ${join(dir, 'customizations')}, watch: false }
`);
  const out: string[] = [];
  const daemon = spawnDaemon(config, out);
  cleanup.push(() => killIfAlive(daemon));
  const health = async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status;
  await waitFor(async () => (await health()) === 200, 20_000, 'the daemon to be up');

  const seed = Number(process.env['FUZZ_SEED'] ?? 4242);
  const random = rng(seed);
  const statuses: Record<string, number> = {};
  const none: string[] = [];
  const secrets = [bitrix.clientSecret, AMI_SECRET, APP_TOKEN];
  const started = Date.now();
  const requests = Array.from({ length: REQUESTS }, () => mutatedRequest(random));
  // A few at a time, as scanners do.
  for (let i = 0; i < requests.length; i += 8) {
    const batch = requests.slice(i, i + 8);
    const answers = await Promise.all(batch.map((q) => raw(port, q.data)));
    answers.forEach((answer, j) => {
      const { kind } = batch[j]!;
      const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 'none';
      statuses[`${kind} ${status}`] = (statuses[`${kind} ${status}`] ?? 0) + 1;
      expect(status).not.toMatch(/^5/);
      for (const s of secrets) expect(answer).not.toContain(s);
      // Only a GET of /healthz or /metrics succeeds (Node also takes the version-less and bare-LF forms);
      // everything else is refused with a 4xx.
      const line = batch[j]!.data.subarray(0, 40).toString('latin1').split(/\r?\n/)[0];
      if (status !== 'none' && !status.startsWith('4')) expect(`${status} ${line}`).toMatch(/^200 GET \/(healthz|metrics)(\?\S*)?( HTTP\/1\.1)?$/);
      // No answer at all happens only where the client sent an incomplete request and hung up.
      if (status === 'none') none.push(`${kind}: ${batch[j]!.data.subarray(0, 40).toString('latin1')}`);
    });
  }
  const elapsed = Date.now() - started;
  process.stderr.write(`HTTP fuzz: seed ${seed}, ${REQUESTS} requests in ${elapsed} ms; ${JSON.stringify(statuses)}\n`);

  // Every request got an answer (the server does not wait for the rest of a truncated one: the client hung up).
  expect(none).toEqual([]);
  expect(daemon.exitCode).toBeNull();
  expect(await health()).toBe(200);
  const log = out.join('');
  expect(log).toMatch(/malformed HTTP request rejected: HPE_/);
  expect(log).toMatch(/no such endpoint \(404\).*E_WEBHOOK/);
  expect(log).toMatch(/method not allowed.*E_WEBHOOK/);
  expect(log).not.toMatch(/unhandled rejection|TypeError|RangeError|internal error/);
  for (const s of secrets) expect(log).not.toContain(s);
  // Stopping must not wait on a socket a malformed request left half-closed.
  daemon.kill('SIGTERM');
  expect(await new Promise((resolve) => daemon.once('exit', (c, s) => resolve(c ?? s)))).toBe(0);
}, 60_000);
