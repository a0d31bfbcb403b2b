import type { Logger } from '../log/logger.ts';
import type { BitrixClient } from './client.ts';

export interface ExtensionUser {
  userId: number;
  name: string;
  active: boolean;
}

interface WireUser {
  ID?: string | number;
  NAME?: string;
  LAST_NAME?: string;
  ACTIVE?: boolean | string;
  UF_PHONE_INNER?: string | number | null;
}

/** user.get pages are always 50 records (api-reference/user/user-get.md). */
const PAGE_SIZE = 50;

/**
 * Extension (UF_PHONE_INNER) → Bitrix24 user, read page by page with `start` from user.get filtered to active
 * employees. Users without an extension are skipped; if two users share one, the lower ID wins (reported).
 */
export async function fetchExtensionMap(client: BitrixClient, log?: Logger): Promise<Map<string, ExtensionUser>> {
  const map = new Map<string, ExtensionUser>();
  let start = 0;
  for (let page = 0; ; page++) {
    const res = await client.call<WireUser[]>('user.get', {
      FILTER: { ACTIVE: true, USER_TYPE: 'employee' },
      SORT: 'ID',
      ORDER: 'ASC',
      start,
    });
    const users = Array.isArray(res.result) ? res.result : [];
    for (const u of users) {
      const extension = u.UF_PHONE_INNER === undefined || u.UF_PHONE_INNER === null ? '' : String(u.UF_PHONE_INNER).trim();
      const userId = Number(u.ID);
      if (!extension || !Number.isInteger(userId)) continue;
      const existing = map.get(extension);
      if (existing) {
        log?.warn(`extension ${extension} is set for Bitrix24 users ${existing.userId} and ${userId}: using ${existing.userId}`);
        continue;
      }
      map.set(extension, {
        userId,
        name: [u.NAME, u.LAST_NAME].filter((s) => typeof s === 'string' && s.trim()).join(' ').trim(),
        active: u.ACTIVE === true || u.ACTIVE === 'Y' || u.ACTIVE === 'true',
      });
    }
    // Stop on the last page; the page cap guards against a portal that keeps answering `next`.
    const total = res.total ?? 0;
    if (res.next === undefined || users.length === 0 || page > total / PAGE_SIZE + 1) break;
    start = res.next;
  }
  return map;
}
