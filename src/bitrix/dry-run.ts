/**
 * A Bitrix24 client that sends nothing: `replay` uses it to show the exact requests a trace would produce.
 * Every call is written to `out` and answered with a plausible result (register returns a CALL_ID named after
 * its order), so the dispatcher runs exactly the code path it runs in production.
 */
import type { BitrixResponse } from './client.ts';
import { TELEPHONY_METHODS, type RestCaller } from './telephony.ts';

export interface DryRunRequest {
  method: string;
  params: Record<string, unknown>;
}

export class DryRunClient implements RestCaller {
  readonly requests: DryRunRequest[] = [];
  readonly #onRequest: (r: DryRunRequest) => void;
  #registered = 0;

  constructor(onRequest: (r: DryRunRequest) => void = () => undefined) {
    this.#onRequest = onRequest;
  }

  async call<T = unknown>(method: string, params: object = {}): Promise<BitrixResponse<T>> {
    const request = { method, params: { ...(params as Record<string, unknown>) } };
    this.requests.push(request);
    this.#onRequest(request);
    let result: unknown = true;
    if (method === TELEPHONY_METHODS.register) result = { CALL_ID: `dry-run.call.${++this.#registered}`, CRM_CREATED_ENTITIES: [] };
    if (method === TELEPHONY_METHODS.finish) result = { CALL_STATUS: 1 };
    if (method === TELEPHONY_METHODS.attachRecord) result = { FILE_ID: 0 };
    return { result: result as T } as BitrixResponse<T>;
  }

  async upload(): Promise<BitrixResponse<unknown>> {
    return { result: { FILE_ID: 0 } } as BitrixResponse<unknown>;
  }
}
