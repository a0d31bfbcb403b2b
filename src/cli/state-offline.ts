/**
 * The daemon's state database opened by a CLI command (status, outbox), beside or instead of the running daemon:
 * SQLite in WAL mode lets both read and write it safely. The Outbox is only used for its queries — it is never
 * started here, so this process delivers nothing.
 */
import { existsSync } from 'node:fs';
import type { Config } from '../config/schema.ts';
import { DaemonError } from '../errors.ts';
import { silentLogger } from '../log/logger.ts';
import { Outbox } from '../outbox/outbox.ts';
import { openStore, type Store } from '../store/db.ts';

export interface OfflineState {
  store: Store;
  outbox: Outbox;
  close(): void;
}

export function openStateOffline(config: Config): OfflineState {
  const file = config.storage.path;
  // Opening would create an empty database: a wrong path must say so instead.
  if (file !== ':memory:' && !existsSync(file)) {
    throw new DaemonError('E_STORE', `no state database at ${file} (storage.path): has the daemon ever run with this config?`);
  }
  const store = openStore(file);
  const outbox = new Outbox(store, {
    handler: () => Promise.reject(new Error('the CLI does not deliver requests')),
    log: silentLogger(),
  });
  return { store, outbox, close: () => store.close() };
}
