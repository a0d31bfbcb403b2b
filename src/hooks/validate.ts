/**
 * Checks hook inputs and outputs against the contract and turns a raw answer into a HookOutcome. Validators are
 * compiled once per HookValidators instance (one per runner: no module-level state).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { HOOK_NAMES, MERGED_HOOKS, type HookName, type HookOutcome } from './contract.ts';
import { inputSchema, outputSchema } from './schemas.ts';

export type Checked = { ok: true } | { ok: false; error: string };

export class HookValidators {
  readonly #input = new Map<HookName, ValidateFunction>();
  readonly #output = new Map<HookName, ValidateFunction>();

  constructor() {
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    for (const hook of HOOK_NAMES) {
      this.#input.set(hook, ajv.compile(inputSchema(hook)));
      this.#output.set(hook, ajv.compile(outputSchema(hook)));
    }
  }

  /** `input` is the whole `{"params": ...}` object. Messages are rooted at `params`. */
  checkInput(hook: HookName, input: unknown): Checked {
    return check(this.#input.get(hook)!, input);
  }

  /** `output` is the whole answer. Messages are rooted at the answer (`data.phone must be string`). */
  checkOutput(hook: HookName, output: unknown): Checked {
    return check(this.#output.get(hook)!, output);
  }
}

function check(validate: ValidateFunction, value: unknown): Checked {
  if (validate(value)) return { ok: true };
  return { ok: false, error: formatErrors(validate.errors ?? []) };
}

/** ajv errors → `data.phone must be string; data must have required property 'x'`. */
export function formatErrors(errors: ErrorObject[]): string {
  const lines = new Set<string>();
  for (const e of errors) {
    // anyOf/if wrappers repeat what their branches said; the branch messages are the useful ones.
    if (e.keyword === 'anyOf') continue;
    const where = e.instancePath === '' ? 'output' : e.instancePath.slice(1).replaceAll('/', '.');
    let msg = `${where} ${e.message ?? 'is invalid'}`;
    if (e.keyword === 'additionalProperties') msg += ` ('${String(e.params['additionalProperty'])}')`;
    if (e.keyword === 'enum') msg += ` (${(e.params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')})`;
    lines.add(msg);
  }
  return [...lines].join('; ');
}

/** Itgrix: `data` that is null, `[]` or `{}` cancels the CRM request the hook precedes. */
export function isEmptyData(data: unknown): boolean {
  if (data === null || data === undefined) return true;
  if (Array.isArray(data)) return data.length === 0;
  return typeof data === 'object' && Object.keys(data).length === 0;
}

/**
 * A parsed answer → outcome (ms filled by the caller). Order matters: an `error` state wins, then empty data cancels
 * (whatever else came with it, as in Itgrix), then the schema.
 */
export function interpretOutput<H extends HookName>(
  validators: HookValidators, hook: H, params: unknown, output: unknown,
): Exclude<HookOutcome<H>, { status: 'absent' }> {
  if (output === null || typeof output !== 'object' || Array.isArray(output)) {
    return { status: 'error', error: `output must be an object like {"data": {...}, "state": "success"}`, ms: 0 };
  }
  const answer = output as Record<string, unknown>;
  if (answer['state'] === 'error') {
    const why = typeof answer['message'] === 'string' ? `: ${answer['message']}` : '';
    return { status: 'error', error: `the hook answered state "error"${why}`, ms: 0 };
  }
  if (!('data' in answer)) return { status: 'error', error: `output must have required property 'data'`, ms: 0 };
  if (isEmptyData(answer['data'])) return { status: 'cancelled', ms: 0 };
  const checked = validators.checkOutput(hook, answer);
  if (!checked.ok) return { status: 'error', error: checked.error, ms: 0 };
  const data = mergeData(hook, params, answer['data']) as never;
  const outcome: { status: 'ok'; data: never; action?: never; filter?: never; ms: number } = { status: 'ok', data, ms: 0 };
  if (answer['action'] !== undefined) outcome.action = answer['action'] as never;
  if (answer['filter'] !== undefined) outcome.filter = answer['filter'] as never;
  return outcome;
}

/** See HookOutcome: params-changing hooks get the returned fields laid over their params. */
function mergeData(hook: HookName, params: unknown, data: unknown): unknown {
  const contextKeys = MERGED_HOOKS[hook];
  if (!contextKeys) return data;
  if (hook === 'process_task_creation_params') {
    const before = (params as { arNewTaskData: Record<string, unknown> }).arNewTaskData;
    const after = (data as { arNewTaskData: Record<string, unknown> }).arNewTaskData;
    return { arNewTaskData: overlay(before, after, []) };
  }
  return overlay(params as Record<string, unknown>, data as Record<string, unknown>, contextKeys);
}

function overlay(base: Record<string, unknown>, top: Record<string, unknown>, drop: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base, ...top };
  for (const [key, value] of Object.entries(out)) if (value === null || drop.includes(key)) delete out[key];
  return out;
}
