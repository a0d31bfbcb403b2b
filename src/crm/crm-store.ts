/**
 * What the CRM service must remember across restarts, in the daemon's SQLite file: the entities created for a
 * call (so end-of-call updates touch only those, and a retried creation does not create twice) and the open
 * missed-call tasks (so a callback can close them). Tables are created here, idempotently, because they belong
 * to this feature alone.
 */
import type { Store } from '../store/db.ts';
import type { CrmItemType } from './item-fields.ts';

export interface CreatedEntity {
  entityType: CrmItemType;
  entityId: number;
  /** 'daemon' = crm.item.add by this service; 'bitrix' = Bitrix24's CRM_CREATE in register. */
  via: 'daemon' | 'bitrix';
}

export interface OpenTask {
  taskId: number;
  callId: string;
  ownerId: number;
  createdAt: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS crm_created_entities (
    call_id     TEXT    NOT NULL,
    entity_type TEXT    NOT NULL,
    entity_id   INTEGER NOT NULL,
    via         TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (call_id, entity_type, entity_id)
  );
  CREATE TABLE IF NOT EXISTS crm_missed_tasks (
    task_id      INTEGER PRIMARY KEY,
    call_id      TEXT    NOT NULL UNIQUE,
    phone_digits TEXT    NOT NULL,
    owner_id     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    closed_at    INTEGER
  );
  CREATE INDEX IF NOT EXISTS crm_missed_tasks_open ON crm_missed_tasks (phone_digits, closed_at, created_at);
`;

/** Numbers are compared by their digits: +79161234567 and 79161234567 are the same caller. */
export function phoneDigits(phone: string): string {
  return phone.replace(/\D/g, '');
}

export class CrmStore {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #s;

  constructor(store: Store, now: () => number = store.now) {
    this.#store = store;
    this.#now = now;
    store.guard('creating the CRM tables', () => store.db.exec(SCHEMA));
    const db = store.db;
    this.#s = {
      pruneEntities: db.prepare<[number]>('DELETE FROM crm_created_entities WHERE created_at < ?'),
      pruneTasks: db.prepare<[number]>('DELETE FROM crm_missed_tasks WHERE created_at < ?'),
      addEntity: db.prepare<[string, string, number, string, number]>(
        'INSERT OR IGNORE INTO crm_created_entities (call_id, entity_type, entity_id, via, created_at) VALUES (?, ?, ?, ?, ?)'),
      entities: db.prepare<[string], { entity_type: string; entity_id: number; via: string }>(
        'SELECT entity_type, entity_id, via FROM crm_created_entities WHERE call_id = ? ORDER BY created_at, rowid'),
      addTask: db.prepare<[number, string, string, number, number]>(
        'INSERT OR IGNORE INTO crm_missed_tasks (task_id, call_id, phone_digits, owner_id, created_at) VALUES (?, ?, ?, ?, ?)'),
      taskForCall: db.prepare<[string], { task_id: number }>('SELECT task_id FROM crm_missed_tasks WHERE call_id = ?'),
      openTasks: db.prepare<[string, number], { task_id: number; call_id: string; owner_id: number; created_at: number }>(
        `SELECT task_id, call_id, owner_id, created_at FROM crm_missed_tasks
         WHERE phone_digits = ? AND closed_at IS NULL AND created_at >= ? ORDER BY created_at`),
      closeTask: db.prepare<[number, number]>('UPDATE crm_missed_tasks SET closed_at = ? WHERE task_id = ?'),
    };
  }

  /**
   * Forgets what is older than the cutoff: created entities matter only until their call ends, missed tasks only
   * within the callback window; both are long past after the retention the daemon uses (days).
   */
  prune(cutoff: number): number {
    return this.#store.guard('pruning the CRM tables', () => this.#s.pruneEntities.run(cutoff).changes + this.#s.pruneTasks.run(cutoff).changes);
  }

  rememberEntity(callId: string, e: CreatedEntity): void {
    this.#store.guard('remembering a created CRM entity', () =>
      this.#s.addEntity.run(callId, e.entityType, e.entityId, e.via, this.#now()));
  }

  createdEntities(callId: string): CreatedEntity[] {
    return this.#store.guard('reading created CRM entities', () => this.#s.entities.all(callId)).map((r) => ({
      entityType: r.entity_type as CrmItemType, entityId: r.entity_id, via: r.via as CreatedEntity['via'],
    }));
  }

  rememberTask(taskId: number, callId: string, phone: string, ownerId: number): void {
    this.#store.guard('remembering a missed-call task', () =>
      this.#s.addTask.run(taskId, callId, phoneDigits(phone), ownerId, this.#now()));
  }

  taskForCall(callId: string): number | undefined {
    return this.#store.guard('reading a missed-call task', () => this.#s.taskForCall.get(callId))?.task_id;
  }

  /** Open tasks for this number created at or after `since` (epoch ms), oldest first. */
  openTasks(phone: string, since: number): OpenTask[] {
    return this.#store.guard('reading open missed-call tasks', () => this.#s.openTasks.all(phoneDigits(phone), since)).map((r) => ({
      taskId: r.task_id, callId: r.call_id, ownerId: r.owner_id, createdAt: r.created_at,
    }));
  }

  closeTask(taskId: number): void {
    this.#store.guard('closing a missed-call task', () => this.#s.closeTask.run(this.#now(), taskId));
  }
}
