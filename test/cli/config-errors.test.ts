/**
 * Every kind of config mistake stops every config-reading command with exit code 1 and a message naming the
 * file, the line and the key — never a stack trace, never a secret (issue 6: missing key, wrong type, bad YAML,
 * missing file).
 */
import { afterAll, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'ab24-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = runCli;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const SECRET = 'very-secret-ami-password';
const cases: Array<[string, () => string, (f: string) => string[]]> = [
  ['a missing file', () => join(dir, 'absent.yaml'), (f) => [`E_CONFIG: ${f}: cannot read the configuration file: ENOENT`]],
  ['bad YAML', () => file('bad.yaml', `ami:\n  secret: ${SECRET}\n  host: [1,\nbitrix24: x\n`), (f) => [`E_CONFIG: ${f}:4:1: `]],
  ['a wrong type', () => file('type.yaml', `ami: { username: u, secret: ${SECRET} }\nbitrix24:\n  webhook_url: https://x.bitrix24.ru/rest/1/abc/\n  default_user_id: "one"\n`),
    (f) => [`E_CONFIG: ${f}:4: bitrix24.default_user_id: must be integer`]],
  ['a missing key', () => file('missing.yaml', `ami:\n  host: 127.0.0.1\n  secret: ${SECRET}\nbitrix24: { webhook_url: "https://x.bitrix24.ru/rest/1/abc/", default_user_id: 1 }\n`),
    (f) => [`E_CONFIG: ${f}:1: ami: missing required key username`]],
];

for (const [what, make, expected] of cases) {
  test(`${what}: run, check, status and outbox all exit 1 with file:line:key`, async () => {
    const path = make();
    for (const command of [['run'], ['check'], ['status'], ['outbox', 'list']]) {
      const res = await cli([...command, '--config', path]);
      expect(res.code).toBe(1);
      for (const text of expected(path)) expect(res.stderr).toContain(text);
      expect(res.stderr).not.toMatch(/^\s+at /m);
      expect(res.stderr + res.stdout).not.toContain(SECRET);
    }
  });
}

test('a daemon that cannot start (HTTP port taken) exits 1 with the reason instead of lingering', async () => {
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
  const port = (blocker.address() as { port: number }).port;
  try {
    const config = file('port-taken.yaml', `ami: { host: 127.0.0.1, port: 1, username: u, secret: s3cret-xyz }\n`
      + `bitrix24: { webhook_url: "https://example.bitrix24.ru/rest/1/abcdef/", default_user_id: 1 }\n`
      + `http: { host: 127.0.0.1, port: ${port} }\nstorage: { path: ":memory:" }\ncustomizations: { dir: ./c, watch: false }\n`);
    const res = await cli(['run', '--config', config]);
    expect(res.code).toBe(1);
    expect(res.stderr + res.stdout).toMatch(/EADDRINUSE/);
  } finally {
    blocker.close();
  }
}, 30_000);
