/**
 * Black and white lists for registration, from configuration (crm.registration_filter), so the common cases need
 * no need_registration script: by extension, trunk, DID and client-number pattern. A call matching any `deny`
 * entry is refused; when an `allow` list of a kind is non-empty, the call must match it (an absent value — no
 * extension yet, no DID on an outgoing call — does not match an allow list of that kind and is not checked
 * against it either). The need_registration hook runs after this check and may override it.
 */
import type { CallMatchConfig } from '../config/schema.ts';

export interface RegistrationQuery {
  direction: 'incoming' | 'outgoing' | 'internal';
  extension?: string;
  trunk?: string;
  did?: string;
  /** The client's number as the PBX presented or dialled it (or normalised: patterns should allow both). */
  number?: string;
}

export interface RegistrationDecision {
  allowed: boolean;
  /** Why, for the log: `deny.trunks: fax-trunk`, `allow.dids: 74951234567 not listed`, `no rule`. */
  reason: string;
}

type Kind = 'extensions' | 'trunks' | 'dids' | 'numbers';

export class RegistrationFilter {
  readonly #allow: CallMatchConfig;
  readonly #deny: CallMatchConfig;
  readonly #allowNumbers: RegExp[];
  readonly #denyNumbers: RegExp[];

  constructor(config: { allow: CallMatchConfig; deny: CallMatchConfig }) {
    this.#allow = config.allow;
    this.#deny = config.deny;
    this.#allowNumbers = config.allow.numbers.map((p) => new RegExp(p));
    this.#denyNumbers = config.deny.numbers.map((p) => new RegExp(p));
  }

  check(q: RegistrationQuery): RegistrationDecision {
    const values: Record<Kind, string | undefined> = {
      extensions: q.extension || undefined, trunks: q.trunk || undefined, dids: q.did || undefined, numbers: q.number || undefined,
    };
    for (const kind of ['extensions', 'trunks', 'dids', 'numbers'] as const) {
      const value = values[kind];
      if (value !== undefined && this.#matches('deny', kind, value)) return { allowed: false, reason: `deny.${kind}: ${value}` };
    }
    for (const kind of ['extensions', 'trunks', 'dids', 'numbers'] as const) {
      const value = values[kind];
      if (this.#allow[kind].length === 0 || value === undefined) continue;
      if (!this.#matches('allow', kind, value)) return { allowed: false, reason: `allow.${kind}: ${value} not listed` };
    }
    return { allowed: true, reason: 'no rule refuses it' };
  }

  #matches(list: 'allow' | 'deny', kind: Kind, value: string): boolean {
    if (kind === 'numbers') return (list === 'allow' ? this.#allowNumbers : this.#denyNumbers).some((re) => re.test(value));
    return (list === 'allow' ? this.#allow : this.#deny)[kind].includes(value);
  }
}
