/** What the CRM side remembers (created entities, missed-call tasks) is forgotten after the retention. */
import { expect, test } from '@jest/globals';
import { CrmStore } from '../../src/crm/crm-store.ts';
import { openStore } from '../../src/store/db.ts';

test('prune forgets created entities and tasks older than the cutoff and keeps the newer ones', () => {
  const store = openStore(':memory:');
  let now = 1_000;
  const crm = new CrmStore(store, () => now);
  crm.rememberEntity('pbx/old', { entityType: 'LEAD', entityId: 1, via: 'daemon' });
  crm.rememberTask(11, 'pbx/old', '+79161234567', 2);
  now = 5_000;
  crm.rememberEntity('pbx/new', { entityType: 'LEAD', entityId: 2, via: 'daemon' });
  crm.rememberTask(12, 'pbx/new', '+79161234568', 2);
  expect(crm.prune(2_000)).toBe(2);
  expect(crm.createdEntities('pbx/old')).toEqual([]);
  expect(crm.taskForCall('pbx/old')).toBeUndefined();
  expect(crm.createdEntities('pbx/new')).toEqual([{ entityType: 'LEAD', entityId: 2, via: 'daemon' }]);
  expect(crm.taskForCall('pbx/new')).toBe(12);
  store.close();
});
