import { afterEach, describe, expect, test } from '@jest/globals';
import { fetchExtensionMap } from '../../src/bitrix/users.ts';
import { capturingLogger, startRig, type Rig } from './setup.ts';

let rig: Rig;
afterEach(async () => {
  await rig?.close();
});

describe('fetchExtensionMap', () => {
  test('pages through >50 active employees with start and maps UF_PHONE_INNER → user', async () => {
    rig = await startRig();
    rig.emu.users.push(...Array.from({ length: 120 }, (_, i) => ({
      ID: 200 + i, NAME: `Agent${i}`, LAST_NAME: 'Q', ACTIVE: i !== 5, ...(i % 10 === 9 ? {} : { UF_PHONE_INNER: String(2000 + i) }),
    })));
    rig.emu.users.push({ ID: 900, NAME: 'Ext', LAST_NAME: 'Ranet', ACTIVE: true, UF_PHONE_INNER: '900', USER_TYPE: 'extranet' });
    const map = await fetchExtensionMap(rig.client);
    const userGets = rig.emu.requests.filter((r) => r.method === 'user.get');
    expect(userGets.map((r) => r.params.start)).toEqual([0, 50, 100]);
    expect(userGets[0]?.params.FILTER).toEqual({ ACTIVE: true, USER_TYPE: 'employee' });
    // 3 seeded + 120 - 12 without extension - 1 inactive (#5 has one).
    expect(map.size).toBe(3 + 120 - 12 - 1);
    expect(map.get('101')).toEqual({ userId: 2, name: 'Ivan Petrov', active: true });
    expect(map.get('2119')).toBeUndefined();
    expect(map.get('2005')).toBeUndefined();
    expect(map.get('900')).toBeUndefined();
    expect(map.get('2118')).toEqual({ userId: 318, name: 'Agent118 Q', active: true });
  });

  test('a shared extension keeps the lower ID and warns', async () => {
    rig = await startRig();
    rig.emu.users.push({ ID: 50, NAME: 'Dup', LAST_NAME: 'User', ACTIVE: true, UF_PHONE_INNER: '102' });
    const { log, lines } = capturingLogger();
    const map = await fetchExtensionMap(rig.client, log);
    expect(map.get('102')?.userId).toBe(3);
    expect(lines.join('')).toContain('extension 102 is set for Bitrix24 users 3 and 50: using 3');
  });
});
