import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openStore } from '../../src/store/db.ts';
import { MIGRATIONS } from '../../src/store/migrations.ts';
import { DaemonError } from '../../src/errors.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'b24-store-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function storeErrorOf(fn: () => unknown): DaemonError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DaemonError);
    expect((err as DaemonError).code).toBe('E_STORE');
    return err as DaemonError;
  }
  throw new Error('expected an E_STORE error');
}

describe('openStore', () => {
  test('creates the folder and the schema, in WAL mode; reopening migrates nothing twice', () => {
    const file = path.join(dir, 'nested/state.sqlite');
    const store = openStore(file);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    expect(store.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.at(-1)!.version);
    store.setKv('k', { a: 1 });
    store.close();
    store.close(); // idempotent

    const again = openStore(file);
    expect(again.getKv('k')).toEqual({ a: 1 });
    expect(again.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.at(-1)!.version);
    again.close();
  });

  test('refuses a database from a newer daemon, naming the file', () => {
    const file = path.join(dir, 'state.sqlite');
    const db = new Database(file);
    db.pragma('user_version = 999');
    db.close();
    expect(storeErrorOf(() => openStore(file)).message).toBe(
      `${file}: the state database has schema version 999, newer than this daemon knows (${MIGRATIONS.at(-1)!.version}); upgrade the daemon or use another storage.path`);
  });

  test('a file that is not a database, or a path that is a folder, is E_STORE naming the path', () => {
    const junk = path.join(dir, 'junk.sqlite');
    writeFileSync(junk, 'this is not sqlite, just some text long enough to fill a header page'.repeat(20));
    expect(storeErrorOf(() => openStore(junk)).message).toMatch(new RegExp(`^${junk}: cannot open the state database: file is not a database`));
    const folder = path.join(dir, 'folder');
    mkdirSync(folder);
    expect(storeErrorOf(() => openStore(folder)).message).toMatch(new RegExp(`^${folder}: cannot open the state database: `));
  });
});

describe('Store', () => {
  test('calls: save (insert and update), load the active ones per PBX, delete', () => {
    let now = 1000;
    const store = openStore(':memory:', { now: () => now });
    store.saveCall('main', 'c1', { step: 1 });
    now = 2000;
    store.saveCall('main', 'c2', { step: 'x' });
    store.saveCall('other', 'c1', { other: true });
    now = 3000;
    store.saveCall('main', 'c1', { step: 2 });
    store.saveCall('main', 'c3', { done: true }, false);
    expect(store.loadActiveCalls('main')).toEqual([
      { callKey: 'c2', state: { step: 'x' }, updatedAt: 2000 },
      { callKey: 'c1', state: { step: 2 }, updatedAt: 3000 },
    ]);
    store.deleteCall('main', 'c2');
    expect(store.loadActiveCalls('main').map((c) => c.callKey)).toEqual(['c1']);
    expect(store.loadActiveCalls('other')).toEqual([{ callKey: 'c1', state: { other: true }, updatedAt: 2000 }]);
    store.close();
  });

  test('kv: get, set (replace), delete', () => {
    const store = openStore(':memory:');
    expect(store.getKv('oauth')).toBeUndefined();
    store.setKv('oauth', { accessToken: 'a' });
    store.setKv('oauth', { accessToken: 'b' });
    expect(store.getKv<{ accessToken: string }>('oauth')).toEqual({ accessToken: 'b' });
    store.deleteKv('oauth');
    expect(store.getKv('oauth')).toBeUndefined();
    store.close();
  });

  test('transaction: commits together, rolls back together on a throw, nests', () => {
    const store = openStore(':memory:');
    expect(store.transaction(() => {
      store.saveCall('p', 'a', 1);
      store.transaction(() => store.setKv('x', 1));
      return 'ok';
    })).toBe('ok');
    expect(() => store.transaction(() => {
      store.saveCall('p', 'b', 2);
      store.transaction(() => store.setKv('y', 2));
      throw new Error('boom');
    })).toThrow('boom');
    expect(store.loadActiveCalls('p').map((c) => c.callKey)).toEqual(['a']);
    expect(store.getKv('x')).toBe(1);
    expect(store.getKv('y')).toBeUndefined();
    store.close();
  });

  test('use after close is E_STORE naming the file', () => {
    const file = path.join(dir, 'state.sqlite');
    const store = openStore(file);
    store.close();
    expect(storeErrorOf(() => store.setKv('a', 1)).message).toBe(`${file}: writing a value: The database connection is not open`);
  });
});
