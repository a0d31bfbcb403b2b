/**
 * Bitrix24's universal CRM methods (crm.item.*) name fields in camelCase (`assignedById`, `sourceId`, phones in
 * `fm`), while customization scripts keep the Itgrix / crm.lead.* names (`ASSIGNED_BY_ID`, `SOURCE_ID`, `PHONE`).
 * This is the one place that translates the latter into the former. User fields (`UF_CRM_…`) keep their names:
 * every crm.item.* request is sent with `useOriginalUfNames: 'Y'` (crm-item-add.md).
 */

export type CrmEntityType = 'LEAD' | 'CONTACT' | 'COMPANY';
export type CrmItemType = CrmEntityType | 'DEAL';

/** entityTypeId of the system types (crm/data-types.md#object_type). */
export const ENTITY_TYPE_ID: Readonly<Record<CrmItemType, number>> = { LEAD: 1, DEAL: 2, CONTACT: 3, COMPANY: 4 };

/** UF_CRM_TASK prefixes (tasks-task-add.md): L_4, C_7, CO_5, D_10. */
export const TASK_LINK_PREFIX: Readonly<Record<CrmItemType, string>> = { LEAD: 'L', DEAL: 'D', CONTACT: 'C', COMPANY: 'CO' };

/** crm.lead.* names whose crm.item.* name is not their plain camelCase. */
const RENAMED: Readonly<Record<string, string>> = { STATUS_ID: 'stageId', STATUS_SEMANTIC_ID: 'stageSemanticId', ID: 'id' };
/** Multifields: crm.lead.* takes them as `PHONE: [{VALUE, VALUE_TYPE}]`, crm.item.* as `fm: [{typeId, valueType, value}]`. */
const MULTIFIELDS = new Set(['PHONE', 'EMAIL', 'WEB', 'IM', 'LINK']);

/** `ASSIGNED_BY_ID` → `assignedById`; user fields and names that are already camelCase stay as they are. */
export function itemFieldName(name: string): string {
  if (/^UF_/i.test(name) || /[a-z]/.test(name)) return name;
  return RENAMED[name] ?? name.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** A field map in crm.lead.* names → crm.item.* `fields`. */
export function toItemFields(fields: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fm: Array<Record<string, unknown>> = [];
  for (const [key, value] of Object.entries(fields)) {
    if (MULTIFIELDS.has(key) && Array.isArray(value)) {
      for (const v of value as Array<Record<string, unknown>>) {
        fm.push({ typeId: key, valueType: v.VALUE_TYPE ?? 'WORK', value: v.VALUE });
      }
      continue;
    }
    out[itemFieldName(key)] = value;
  }
  if (fm.length > 0) out.fm = fm;
  return out;
}

const FILTER_OPERATOR = /^(>=|<=|!@|!=%|!%=|!%|=%|%=|!=|>|<|@|%|=|!)?(.*)$/;

/** A crm.lead.list-style filter (Itgrix `process_search_params` filter) → crm.item.list `filter`, operators kept. */
export function toItemFilter(filter: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(filter)) {
    const m = FILTER_OPERATOR.exec(key);
    out[`${m?.[1] ?? ''}${itemFieldName(m?.[2] ?? key)}`] = value;
  }
  return out;
}
