/**
 * scripts/install.sh and scripts/uninstall.sh as a packager or CI runs them: a real bash, a scratch root
 * (DESTDIR), no systemctl, the current user. npm is a stand-in (test/fakes/npm): the real one would download
 * Node.js itself.
 */
import { afterEach, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '../..');
let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function script(name: string, destdir: string, npmLog: string, args: string[] = []) {
  const res = spawnSync('bash', [join(ROOT, 'scripts', name), ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', DESTDIR: destdir, NO_SYSTEMCTL: '1', NPM: join(ROOT, 'test/fakes/npm'), FAKE_NPM_LOG: npmLog },
  });
  return { code: res.status, out: res.stdout + res.stderr };
}

/** Every file and link under dir with a digest of its content (or target) and its mode. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      const key = relative(dir, p);
      if (st.isSymbolicLink()) out[key] = `-> ${readlinkSync(p)}`;
      else if (st.isDirectory()) { out[key + '/'] = (st.mode & 0o7777).toString(8); walk(p); }
      else out[key] = `${(st.mode & 0o7777).toString(8)} ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16)}`;
    }
  };
  walk(dir);
  return out;
}

test('install into a scratch root: the tree, the config from the example; again: nothing changes, an edited config is kept; uninstall keeps config and state; --purge removes them', () => {
  const root = mkdtempSync(join(tmpdir(), 'ab24-root-'));
  dirs.push(root);
  const npmLog = join(root, '..', `${relative(tmpdir(), root)}-npm.log`);
  dirs.push(npmLog);

  const first = script('install.sh', root, npmLog);
  expect(first.out).toContain('created');
  expect(first.code).toBe(0);
  const prefix = join(root, 'opt/asterisk-bitrix24');
  expect(readFileSync(npmLog, 'utf8').trim().split('\n')).toEqual([`${prefix} ci --omit=dev --no-audit --no-fund`]);
  for (const f of ['src/cli.ts', 'src/ops/ops.ts', 'scripts/asterisk-bitrix24', 'package.json', 'package-lock.json', 'config/example.yaml']) {
    expect(existsSync(join(prefix, f))).toBe(true);
  }
  expect(existsSync(join(prefix, 'test'))).toBe(false);
  expect(statSync(join(prefix, 'scripts/asterisk-bitrix24')).mode & 0o111).not.toBe(0);
  expect(readFileSync(join(root, 'etc/asterisk-bitrix24/config.yaml'), 'utf8')).toBe(readFileSync(join(ROOT, 'config/example.yaml'), 'utf8'));
  expect(statSync(join(root, 'etc/asterisk-bitrix24/config.yaml')).mode & 0o777).toBe(0o640);
  expect(statSync(join(root, 'etc/asterisk-bitrix24/env')).mode & 0o777).toBe(0o600);
  expect(statSync(join(root, 'etc/asterisk-bitrix24/customizations')).isDirectory()).toBe(true);
  expect(statSync(join(root, 'var/lib/asterisk-bitrix24')).mode & 0o777).toBe(0o750);
  expect(readFileSync(join(root, 'etc/systemd/system/asterisk-bitrix24.service'), 'utf8'))
    .toBe(readFileSync(join(ROOT, 'systemd/asterisk-bitrix24.service'), 'utf8'));
  expect(readlinkSync(join(root, 'usr/local/bin/asterisk-bitrix24'))).toBe('/opt/asterisk-bitrix24/scripts/asterisk-bitrix24');

  // The admin edits the config; installing again (an upgrade with nothing new) changes nothing at all.
  writeFileSync(join(root, 'etc/asterisk-bitrix24/config.yaml'), 'edited: true\n');
  writeFileSync(join(root, 'var/lib/asterisk-bitrix24/state.sqlite'), 'state');
  const before = snapshot(root);
  const second = script('install.sh', root, npmLog);
  expect(second.code).toBe(0);
  expect(second.out).toContain('kept the existing');
  expect(second.out).toContain('dependencies are up to date');
  expect(snapshot(root)).toEqual(before);
  expect(readFileSync(npmLog, 'utf8').trim().split('\n')).toHaveLength(1);

  const un = script('uninstall.sh', root, npmLog);
  expect(un.code).toBe(0);
  expect(existsSync(prefix)).toBe(false);
  expect(existsSync(join(root, 'etc/systemd/system/asterisk-bitrix24.service'))).toBe(false);
  expect(existsSync(join(root, 'usr/local/bin/asterisk-bitrix24'))).toBe(false);
  expect(readFileSync(join(root, 'etc/asterisk-bitrix24/config.yaml'), 'utf8')).toBe('edited: true\n');
  expect(readFileSync(join(root, 'var/lib/asterisk-bitrix24/state.sqlite'), 'utf8')).toBe('state');

  const purge = script('uninstall.sh', root, npmLog, ['--purge']);
  expect(purge.code).toBe(0);
  expect(existsSync(join(root, 'etc/asterisk-bitrix24'))).toBe(false);
  expect(existsSync(join(root, 'var/lib/asterisk-bitrix24'))).toBe(false);
}, 60_000);

test('an unknown option is refused before anything is touched', () => {
  const root = mkdtempSync(join(tmpdir(), 'ab24-root-'));
  dirs.push(root);
  const res = script('install.sh', root, join(root, 'npm.log'), ['--frobnicate']);
  expect(res.code).toBe(2);
  expect(res.out).toContain('unknown option --frobnicate');
  expect(readdirSync(root)).toEqual([]);
});
