/**
 * CrmService: the CRM side of a call, for the dispatcher to call at the right moments. Every method is safe to
 * repeat (the outbox retries an op that threw): what was created for a call is remembered in SQLite under the
 * call id, so a retry finds it instead of creating it again.
 *
 * When the lead wires it (all phones are the normalised ones the dispatcher sends to Bitrix24):
 *
 * 1. Before `register`:
 *    - `registrationAllowed({ direction, extension, trunk, did, number })` → `{ allowed, reason }`: the configured
 *      black/white lists (crm.registration_filter). Run the need_registration hook after it (it may override).
 *    - `registrationCrmParams({ callId, direction, phone, withheld, userId, filter, did })` →
 *      `{ fields: { CRM_CREATE, CRM_ENTITY_TYPE?, CRM_ENTITY_ID? }, userId, routed, entity? }`: lay `fields` over
 *      the register params (after process_search_params, passing its `filter`), use `userId` as USER_ID (it is the
 *      entity's responsible when crm.route_to_responsible says so and that user has an extension). It searches
 *      (crm.search), and for an unknown number with crm.create.<direction> = lead|contact|deal creates the entity
 *      (process_entity_creation_params, crm.item.add). Keep `entity` with the call for step 3.
 * 2. After `register`: `recordBitrixCreated(callId, parsed.crmCreatedEntities)` — entities Bitrix24 created through
 *    CRM_CREATE count as created by the daemon for step 4.
 * 3. When the call ends (once per call, after its last finish): `onCallFinished({ callId, direction, answered,
 *    phone, withheld, entity, lastRungExtension, did, startedAt })` → `{ taskId?, closedTaskIds }`: a missed
 *    incoming call gets a task (owner policy, process_task_creation_params, tasks.task.add, notifications); an
 *    answered call with the same number completes the open tasks of the callback window.
 * 4. After `finish`: `updateActivity({ callId, activityId: CRM_ACTIVITY_ID, conversation })`
 *    (get_updated_activity_fields → crm.activity.update); after the call's last finish:
 *    `updateCreatedEntities({ callId, call })` (get_updated_entity_fields → crm.item.update, only for entities
 *    created for this call).
 * 5. HTTP: `httpServer.route('GET', '/responsible', crm.responsibleHandler)`.
 *
 * Decisions (from bitrix24/b24restdocs):
 * - Search: telephony.externalCall.searchCrmEntities, not crm.duplicate.findbycomm: one request returns type, id,
 *   responsible and the responsible's extension (USER_PHONE_INNER), which /responsible and routing need.
 *   A process_search_params `filter` is applied with crm.item.list (`@id` of the found ids plus the filter).
 * - Creation/update: crm.item.add / crm.item.update (crm.lead.add etc. are superseded); hook fields keep the
 *   crm.lead.* names and are translated (item-fields.ts). A `deal` is a contact holding the number plus a deal
 *   linked to it (deals have no phone of their own); the call is linked to the contact.
 * - Activity: crm.activity.update. Its page says development stopped in favour of crm.activity.todo.update, but
 *   that method only edits to-do activities; the call's activity (CRM_ACTIVITY_ID) is a call, which only
 *   crm.activity.update can change, and the hook returns exactly its field names.
 * - Callback: tasks.task.complete (current; task.commentitem.add is frozen in favour of the v3 chat API).
 */
import { BitrixError } from '../bitrix/errors.ts';
import type { RestCaller } from '../bitrix/telephony.ts';
import { TELEPHONY_METHODS } from '../bitrix/telephony.ts';
import type { CrmConfig } from '../config/schema.ts';
import type { Conversation, CrmEntity, EntityCreationFields, SearchFilter, TaskFields, UpdatedEntityParams } from '../hooks/contract.ts';
import type { HookRunnerLike, UserLookup } from '../integration/dispatcher.ts';
import type { RouteHandler } from '../integration/http-server.ts';
import { isoWithOffset } from '../integration/iso-time.ts';
import type { Logger } from '../log/logger.ts';
import type { Store } from '../store/db.ts';
import { CrmStore, type CreatedEntity } from './crm-store.ts';
import { deadlineIso } from './deadline.ts';
import { ENTITY_TYPE_ID, TASK_LINK_PREFIX, toItemFields, toItemFilter, type CrmEntityType, type CrmItemType } from './item-fields.ts';
import { notifyInBitrix, notifyInTelegram } from './notify.ts';
import { RegistrationFilter, type RegistrationDecision, type RegistrationQuery } from './registration-filter.ts';
import { createResponsibleHandler } from './responsible-endpoint.ts';

export const CRM_METHODS = {
  itemAdd: 'crm.item.add',
  itemUpdate: 'crm.item.update',
  itemGet: 'crm.item.get',
  itemList: 'crm.item.list',
  activityUpdate: 'crm.activity.update',
  taskAdd: 'tasks.task.add',
  taskComplete: 'tasks.task.complete',
} as const;

export interface CrmServiceOptions {
  client: RestCaller;
  hooks: HookRunnerLike;
  store: Store;
  users: UserLookup;
  log: Logger;
  config: CrmConfig;
  defaultUserId: number;
  /** PBX time zone: deadlines and the time in task descriptions. */
  timezone: string;
  /** bitrix24.crm_create: what `create: bitrix` sends as CRM_CREATE. */
  bitrixCrmCreate: boolean;
  /** bitrix24.crm_source: SOURCE_ID of created entities when crm.source_id is not set (else CALL). */
  crmSource?: string;
  now?: () => number;
}

export type Direction = 'incoming' | 'outgoing' | 'internal';

/** The CRM entity a call belongs to. */
export interface CallEntity {
  entityType: CrmEntityType;
  entityId: number;
  assignedById?: number;
  name?: string;
  /** The responsible's internal number (searchCrmEntities ASSIGNED_BY.USER_PHONE_INNER), when known. */
  responsibleExtension?: string;
  /** True when created for this call (by this service or by Bitrix24's CRM_CREATE). */
  wasCreated?: boolean;
  /** crm.create = deal: the deal created next to the contact. */
  dealId?: number;
}

export interface RegistrationCrm {
  /** Lay these over the register params. */
  fields: { CRM_CREATE: 0 | 1; CRM_ENTITY_TYPE?: CrmEntityType; CRM_ENTITY_ID?: number };
  /** USER_ID to register with: the given one, or the entity's responsible when routed. */
  userId: number;
  routed: boolean;
  entity?: CallEntity;
}

export interface CallFinished {
  callId: string;
  direction: Direction;
  answered: boolean;
  phone: string;
  withheld?: boolean;
  entity?: CallEntity;
  /** The last extension whose phone rang (owner policy `last_rung`). */
  lastRungExtension?: string;
  did?: string;
  /** When the call started (epoch ms): the time in the task; the deadline counts from the end (now). */
  startedAt?: number;
}

const DEFAULT_SOURCE = 'CALL';

export class CrmService {
  readonly #o: CrmServiceOptions;
  readonly #c: CrmConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #db: CrmStore;
  readonly #filter: RegistrationFilter;
  /** For `httpServer.route('GET', '/responsible', …)`. */
  readonly responsibleHandler: RouteHandler;

  constructor(options: CrmServiceOptions) {
    this.#o = options;
    this.#c = options.config;
    this.#log = options.log.child({ component: 'crm' });
    this.#now = options.now ?? Date.now;
    this.#db = new CrmStore(options.store, this.#now);
    this.#filter = new RegistrationFilter(options.config.registrationFilter);
    this.responsibleHandler = createResponsibleHandler({
      lookup: (phone) => this.responsibleExtension(phone),
      cacheMs: options.config.responsibleEndpoint.cacheMs,
      timeoutMs: options.config.responsibleEndpoint.timeoutMs,
      log: this.#log,
      now: this.#now,
    });
  }

  // ---- registration ----

  /** Drops remembered entities and tasks older than `olderThanMs` (the daemon calls it with its retention). */
  prune(olderThanMs: number): number {
    return this.#db.prune(this.#now() - olderThanMs);
  }

  registrationAllowed(q: RegistrationQuery): RegistrationDecision {
    return this.#filter.check(q);
  }

  async registrationCrmParams(q: {
    callId: string; direction: Direction; phone: string; withheld?: boolean; userId: number; filter?: SearchFilter; did?: string;
  }): Promise<RegistrationCrm> {
    const mode = q.direction === 'internal' ? 'none' : this.#c.create[q.direction];
    const crmCreate: 0 | 1 = mode === 'bitrix' && this.#o.bitrixCrmCreate && !q.withheld ? 1 : 0;
    if (q.withheld || q.direction === 'internal') return { fields: { CRM_CREATE: 0 }, userId: q.userId, routed: false };

    let entity = this.#c.search ? await this.findEntity({ phone: q.phone, callId: q.callId, ...(q.filter ? { filter: q.filter } : {}) }) : undefined;
    if (!entity && (mode === 'lead' || mode === 'contact' || mode === 'deal')) {
      entity = await this.createEntity({ callId: q.callId, direction: q.direction, kind: mode, phone: q.phone, assignedById: q.userId, ...(q.did ? { did: q.did } : {}) });
    }
    let userId = q.userId;
    let routed = false;
    if (entity && this.#c.routeToResponsible && entity.assignedById !== undefined && entity.assignedById !== q.userId && entity.responsibleExtension) {
      // Only one of our users (the extension maps back to them) may take the call.
      if ((await this.#o.users.userFor(entity.responsibleExtension)) === entity.assignedById) {
        userId = entity.assignedById;
        routed = true;
        this.#log.info(`call routed to the entity's responsible user ${userId} (extension ${entity.responsibleExtension})`, { callId: q.callId });
      }
    }
    const fields: RegistrationCrm['fields'] = { CRM_CREATE: crmCreate };
    if (entity) Object.assign(fields, { CRM_ENTITY_TYPE: entity.entityType, CRM_ENTITY_ID: entity.entityId });
    return { fields, userId, routed, ...(entity ? { entity } : {}) };
  }

  /** Bitrix24's CRM_CREATE result (register's CRM_CREATED_ENTITIES): created for this call, too. */
  recordBitrixCreated(callId: string, created: ReadonlyArray<{ entityType: string; entityId: number }>): void {
    for (const e of created) {
      const type = e.entityType.toUpperCase();
      if (!(type in ENTITY_TYPE_ID) || !Number.isFinite(e.entityId)) continue;
      this.#db.rememberEntity(callId, { entityType: type as CrmItemType, entityId: e.entityId, via: 'bitrix' });
    }
  }

  /** What was created for this call (by this service or by Bitrix24's CRM_CREATE). */
  createdEntities(callId: string): CreatedEntity[] {
    return this.#db.createdEntities(callId);
  }

  // ---- search ----

  /**
   * The entity a number belongs to, or undefined. Withheld and empty numbers are never searched. `filter` is
   * process_search_params' filter; get_search_filter then picks which of the found entities count, and
   * crm.prefer decides between the rest.
   */
  async findEntity(q: { phone: string; withheld?: boolean; callId?: string; filter?: SearchFilter }): Promise<CallEntity | undefined> {
    if (q.withheld || !/\d/.test(q.phone)) return undefined;
    const ctx = q.callId !== undefined ? { callId: q.callId } : {};
    const res = await this.#o.client.call<CrmEntity[]>(TELEPHONY_METHODS.searchCrmEntities, { PHONE_NUMBER: q.phone });
    let found = (Array.isArray(res.result) ? res.result : []).filter((e) => e && e.CRM_ENTITY_TYPE in ENTITY_TYPE_ID);
    if (q.filter) found = await this.#applyFilter(found, q.filter);
    if (found.length > 0) {
      const plain = found.map((e) => ({
        CRM_ENTITY_TYPE: e.CRM_ENTITY_TYPE, CRM_ENTITY_ID: Number(e.CRM_ENTITY_ID),
        ...(e.ASSIGNED_BY_ID !== undefined ? { ASSIGNED_BY_ID: Number(e.ASSIGNED_BY_ID) } : {}), ...(e.NAME !== undefined ? { NAME: e.NAME } : {}),
      }));
      const hooked = await this.#o.hooks.run('get_search_filter', { phone: q.phone, entities: plain }, ctx);
      if (hooked.status === 'cancelled') found = [];
      else if (hooked.status === 'ok') {
        // Keep what the script kept, with its ASSIGNED_BY_ID; the responsible's extension comes from the search.
        found = hooked.data.entities.map((kept) => {
          const original = found.find((e) => e.CRM_ENTITY_TYPE === kept.CRM_ENTITY_TYPE && Number(e.CRM_ENTITY_ID) === Number(kept.CRM_ENTITY_ID));
          return { ...original, ...kept } as CrmEntity;
        });
      }
    }
    const rank = (e: CrmEntity) => {
      const i = this.#c.prefer.indexOf(e.CRM_ENTITY_TYPE.toLowerCase() as 'lead');
      return i < 0 ? this.#c.prefer.length : i;
    };
    const best = [...found].sort((a, b) => rank(a) - rank(b))[0];
    return best ? toCallEntity(best) : undefined;
  }

  async #applyFilter(found: CrmEntity[], filter: SearchFilter): Promise<CrmEntity[]> {
    const keep = new Set<string>();
    for (const type of ['LEAD', 'CONTACT', 'COMPANY'] as const) {
      const ids = found.filter((e) => e.CRM_ENTITY_TYPE === type).map((e) => Number(e.CRM_ENTITY_ID));
      if (ids.length === 0) continue;
      const typeFilter = filter[type.toLowerCase() as keyof SearchFilter];
      if (!typeFilter) {
        for (const id of ids) keep.add(`${type}:${id}`);
        continue;
      }
      const res = await this.#o.client.call<{ items?: Array<{ id: number | string }> }>(CRM_METHODS.itemList, {
        entityTypeId: ENTITY_TYPE_ID[type], select: ['id'], filter: { ...toItemFilter(typeFilter), '@id': ids }, useOriginalUfNames: 'Y',
      });
      for (const item of res.result?.items ?? []) keep.add(`${type}:${Number(item.id)}`);
    }
    return found.filter((e) => keep.has(`${e.CRM_ENTITY_TYPE}:${Number(e.CRM_ENTITY_ID)}`));
  }

  /** The extension of the responsible user of the number's entity ('' when none): GET /responsible. */
  async responsibleExtension(phone: string): Promise<string> {
    const entity = await this.findEntity({ phone });
    return entity?.responsibleExtension ?? '';
  }

  // ---- creation ----

  /**
   * Creates the entity for an unknown number (crm.create = lead | contact | deal), shaped by
   * process_entity_creation_params (which may change `type`, or cancel). Once per call: a repeat returns the
   * entity created the first time.
   */
  async createEntity(q: {
    callId: string; direction: 'incoming' | 'outgoing'; kind: 'lead' | 'contact' | 'deal'; phone: string; assignedById: number; did?: string;
  }): Promise<CallEntity | undefined> {
    const done = this.#db.createdEntities(q.callId).filter((e) => e.via === 'daemon');
    const doneMain = done.find((e) => e.entityType !== 'DEAL');
    const doneDeal = done.find((e) => e.entityType === 'DEAL');
    const title = this.#c.title
      .replaceAll('{direction}', q.direction === 'incoming' ? 'Incoming' : 'Outgoing')
      .replaceAll('{phone}', q.phone).replaceAll('{did}', q.did ?? '');
    const params: EntityCreationFields = {
      type: q.kind, ASSIGNED_BY_ID: q.assignedById, COMMENTS: '', OPENED: 'Y',
      PHONE: [{ VALUE: q.phone, VALUE_TYPE: 'WORK' }], SOURCE_ID: this.#c.sourceId ?? this.#o.crmSource ?? DEFAULT_SOURCE, TITLE: title,
    };
    if (doneMain && (doneMain.entityType !== 'CONTACT' || doneDeal || params.type !== 'deal')) {
      return { entityType: doneMain.entityType as CrmEntityType, entityId: doneMain.entityId, assignedById: q.assignedById, wasCreated: true,
        ...(doneDeal ? { dealId: doneDeal.entityId } : {}) };
    }
    const hooked = await this.#o.hooks.run('process_entity_creation_params', params, { callId: q.callId });
    if (hooked.status === 'cancelled') {
      this.#log.info(`no CRM entity created for ${q.phone}: cancelled by customization`, { callId: q.callId });
      return undefined;
    }
    const { type, ...fields } = hooked.status === 'ok' ? hooked.data : params;
    const assignedById = Number(fields.ASSIGNED_BY_ID ?? q.assignedById);
    if (type === 'deal') {
      // The number lives on a contact; the deal is linked to it (deals have no phone).
      const { PHONE, TITLE, ...dealFields } = fields;
      const contactId = doneMain?.entityId ?? await this.#add(q.callId, 'CONTACT', {
        NAME: TITLE ?? title, ASSIGNED_BY_ID: assignedById, OPENED: fields.OPENED ?? 'Y', SOURCE_ID: fields.SOURCE_ID, ...(PHONE ? { PHONE } : {}),
      });
      const dealId = await this.#add(q.callId, 'DEAL', { ...dealFields, TITLE: TITLE ?? title, CONTACT_IDS: [contactId] });
      return { entityType: 'CONTACT', entityId: contactId, assignedById, name: String(TITLE ?? title), wasCreated: true, dealId };
    }
    const entityType: CrmEntityType = type === 'contact' ? 'CONTACT' : 'LEAD';
    // A contact has a name, not a title.
    const itemFields = entityType === 'CONTACT' && fields.NAME === undefined && fields.TITLE !== undefined
      ? (({ TITLE, ...rest }) => ({ ...rest, NAME: TITLE }))(fields)
      : fields;
    const id = await this.#add(q.callId, entityType, itemFields);
    return { entityType, entityId: id, assignedById, name: String(fields.TITLE ?? title), wasCreated: true };
  }

  async #add(callId: string, type: CrmItemType, fields: Record<string, unknown>): Promise<number> {
    const res = await this.#o.client.call<{ item?: { id?: number | string } }>(CRM_METHODS.itemAdd, {
      entityTypeId: ENTITY_TYPE_ID[type], fields: toItemFields(fields), useOriginalUfNames: 'Y',
    });
    const id = Number(res.result?.item?.id);
    if (!Number.isFinite(id) || id <= 0) throw new Error(`${CRM_METHODS.itemAdd}: no item id in the reply`);
    this.#db.rememberEntity(callId, { entityType: type, entityId: id, via: 'daemon' });
    this.#log.info(`created ${type.toLowerCase()} ${id}`, { callId });
    return id;
  }

  // ---- end of call ----

  /**
   * get_updated_entity_fields for each entity created for this call (never for one that existed before it):
   * the returned fields go to crm.item.update; empty data or no hook: no request. A deal the daemon created is
   * offered too (entity_type `deal`, an extension of Itgrix's lead/contact/company). Returns the entities updated.
   */
  async updateCreatedEntities(q: { callId: string; call: Omit<UpdatedEntityParams, 'entity_data'> }): Promise<CreatedEntity[]> {
    const updated: CreatedEntity[] = [];
    for (const e of this.#db.createdEntities(q.callId)) {
      const hooked = await this.#o.hooks.run('get_updated_entity_fields', {
        ...q.call, entity_data: { entity_id: e.entityId, entity_type: e.entityType.toLowerCase() as 'lead' | 'contact' | 'company' | 'deal', was_created: true },
      }, { callId: q.callId });
      if (hooked.status !== 'ok' || Object.keys(hooked.data).length === 0) continue;
      await this.#o.client.call(CRM_METHODS.itemUpdate, {
        entityTypeId: ENTITY_TYPE_ID[e.entityType], id: e.entityId, fields: toItemFields(hooked.data), useOriginalUfNames: 'Y',
      });
      this.#log.info(`updated ${e.entityType.toLowerCase()} ${e.entityId}: ${Object.keys(hooked.data).join(', ')}`, { callId: q.callId });
      updated.push(e);
    }
    return updated;
  }

  /** get_updated_activity_fields for the call's activity (finish's CRM_ACTIVITY_ID) → crm.activity.update. */
  async updateActivity(q: { callId: string; activityId?: number; conversation: Conversation }): Promise<boolean> {
    if (q.activityId === undefined) return false;
    const hooked = await this.#o.hooks.run('get_updated_activity_fields', { ...q.conversation, activity_id: q.activityId }, { callId: q.callId });
    if (hooked.status !== 'ok' || Object.keys(hooked.data).length === 0) return false;
    await this.#o.client.call(CRM_METHODS.activityUpdate, { id: q.activityId, fields: hooked.data });
    this.#log.info(`updated activity ${q.activityId}: ${Object.keys(hooked.data).join(', ')}`, { callId: q.callId });
    return true;
  }

  /**
   * The call ended. Missed incoming call (crm.missed_calls.create_task): one task for it, owned per the owner
   * policy. Answered call (close_on_callback): open tasks for the same number created within callback_window
   * are completed. Withheld numbers get neither (nobody can call them back).
   */
  async onCallFinished(q: CallFinished): Promise<{ taskId?: number; closedTaskIds: number[] }> {
    const mc = this.#c.missedCalls;
    if (q.withheld || !/\d/.test(q.phone) || q.direction === 'internal') return { closedTaskIds: [] };
    if (q.answered) return { closedTaskIds: mc.closeOnCallback ? await this.#closeOpenTasks(q) : [] };
    if (q.direction !== 'incoming' || !mc.createTask) return { closedTaskIds: [] };
    const taskId = await this.#missedTask(q);
    return { ...(taskId !== undefined ? { taskId } : {}), closedTaskIds: [] };
  }

  async #closeOpenTasks(q: CallFinished): Promise<number[]> {
    const closed: number[] = [];
    for (const task of this.#db.openTasks(q.phone, this.#now() - this.#c.missedCalls.callbackWindow)) {
      if (task.callId === q.callId) continue;
      try {
        await this.#o.client.call(CRM_METHODS.taskComplete, { taskId: task.taskId });
      } catch (err) {
        // Already completed or deleted by a person: nothing left to close.
        if (!isPermanent(err)) throw err;
        this.#log.info(`task ${task.taskId} could not be completed (${(err as Error).message}); forgotten`, { callId: q.callId });
      }
      this.#db.closeTask(task.taskId);
      closed.push(task.taskId);
      this.#log.info(`task ${task.taskId} for the missed call from ${q.phone} completed: the caller was reached`, { callId: q.callId });
    }
    return closed;
  }

  async #missedTask(q: CallFinished): Promise<number | undefined> {
    const existing = this.#db.taskForCall(q.callId);
    if (existing !== undefined) return existing;
    const mc = this.#c.missedCalls;
    const owner = await this.#owner(q);
    const time = isoWithOffset(q.startedAt ?? this.#now(), this.#o.timezone);
    const shownTime = `${time.slice(0, 10)} ${time.slice(11, 16)}`;
    const links: string[] = [];
    if (q.entity) links.push(`${TASK_LINK_PREFIX[q.entity.entityType]}_${q.entity.entityId}`);
    if (q.entity?.dealId !== undefined) links.push(`${TASK_LINK_PREFIX.DEAL}_${q.entity.dealId}`);
    let task: TaskFields = {
      TITLE: mc.title.replaceAll('{phone}', q.phone).replaceAll('{did}', q.did ?? '').replaceAll('{time}', shownTime),
      RESPONSIBLE_ID: owner,
      CREATED_BY: mc.createdBy ?? owner,
      DEADLINE: deadlineIso(mc.deadline, this.#now(), this.#o.timezone),
      DESCRIPTION: [
        `Missed call from ${q.phone}`, `Time: ${shownTime} (${this.#o.timezone})`,
        ...(q.did ? [`Line: ${q.did}`] : []), ...(q.lastRungExtension ? [`Rang: ${q.lastRungExtension}`] : []),
      ].join('\n'),
      ...(links.length ? { UF_CRM_TASK: links } : {}),
    };
    const hooked = await this.#o.hooks.run('process_task_creation_params', { arNewTaskData: task }, { callId: q.callId });
    if (hooked.status === 'cancelled') {
      this.#log.info(`no task for the missed call from ${q.phone}: cancelled by customization`, { callId: q.callId });
      return undefined;
    }
    if (hooked.status === 'ok') task = hooked.data.arNewTaskData;
    const res = await this.#o.client.call<{ task?: { id?: number | string } }>(CRM_METHODS.taskAdd, { fields: task });
    const taskId = Number(res.result?.task?.id);
    if (!Number.isFinite(taskId) || taskId <= 0) throw new Error(`${CRM_METHODS.taskAdd}: no task id in the reply`);
    const responsible = Number(task.RESPONSIBLE_ID);
    this.#db.rememberTask(taskId, q.callId, q.phone, responsible);
    this.#log.info(`task ${taskId} for the missed call from ${q.phone} on user ${responsible}`, { callId: q.callId });
    const text = `${task.TITLE} (${shownTime}). Task #${taskId}, deadline ${task.DEADLINE ?? '-'}`;
    if (mc.notify) await notifyInBitrix(this.#o.client, this.#log, responsible, text, q.callId);
    if (mc.telegram) await notifyInTelegram(mc.telegram, this.#log, responsible, text, q.callId);
    return taskId;
  }

  /** The first owner-policy step that yields a user; bitrix24.default_user_id when none does. */
  async #owner(q: CallFinished): Promise<number> {
    for (const step of this.#c.missedCalls.owner) {
      let user: number | undefined;
      if (step.kind === 'fixed') user = step.userId;
      else if (step.kind === 'default') user = this.#o.defaultUserId;
      else if (step.kind === 'last_rung') user = q.lastRungExtension ? await this.#o.users.userFor(q.lastRungExtension) : undefined;
      else if (q.entity) user = q.entity.assignedById ?? await this.#assignedBy(q.entity, q.callId);
      if (user !== undefined && user > 0) return user;
    }
    return this.#o.defaultUserId;
  }

  /** The responsible of an entity the caller did not give one for (e.g. Bitrix24 created it): crm.item.get. */
  async #assignedBy(entity: CallEntity, callId: string): Promise<number | undefined> {
    try {
      const res = await this.#o.client.call<{ item?: { assignedById?: number | string } }>(CRM_METHODS.itemGet, {
        entityTypeId: ENTITY_TYPE_ID[entity.entityType], id: entity.entityId,
      });
      const id = Number(res.result?.item?.assignedById);
      return Number.isFinite(id) && id > 0 ? id : undefined;
    } catch (err) {
      if (!isPermanent(err)) throw err;
      this.#log.info(`${entity.entityType.toLowerCase()} ${entity.entityId} has no readable responsible: ${(err as Error).message}`, { callId });
      return undefined;
    }
  }
}

/** Bitrix24 said no for good (not found, not allowed): retrying cannot help. Auth problems are not this. */
function isPermanent(err: unknown): boolean {
  return err instanceof BitrixError && err.kind === 'permanent';
}

function toCallEntity(e: CrmEntity): CallEntity {
  const assigned = e.ASSIGNED_BY as { USER_PHONE_INNER?: unknown } | undefined;
  const ext = assigned && typeof assigned.USER_PHONE_INNER === 'string' && assigned.USER_PHONE_INNER ? assigned.USER_PHONE_INNER : undefined;
  const assignedById = e.ASSIGNED_BY_ID !== undefined ? Number(e.ASSIGNED_BY_ID) : undefined;
  return {
    entityType: e.CRM_ENTITY_TYPE,
    entityId: Number(e.CRM_ENTITY_ID),
    ...(assignedById !== undefined && Number.isFinite(assignedById) ? { assignedById } : {}),
    ...(e.NAME !== undefined ? { name: e.NAME } : {}),
    ...(ext ? { responsibleExtension: ext } : {}),
  };
}
