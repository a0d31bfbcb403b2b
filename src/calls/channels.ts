/**
 * What kind of party a channel is, from its name alone. Asterisk names channels `<Tech>/<endpoint>-<seq>`
 * (PJSIP/101-0000002a, PJSIP/provider-0000002b, SIP/trunk-00001, DAHDI/i1/74951234567-1) and Local channels
 * `Local/<exten>@<context>-<seq>;1|2`. Extensions are recognised by a configurable pattern; trunks by the configured
 * endpoint list, or, when none is configured, as any telephony endpoint that is not an extension.
 */
export type ChannelKind = 'trunk' | 'extension' | 'local' | 'other';

export interface ClassifyConfig {
  /** Endpoint names of provider trunks. Absent: every non-extension endpoint of a telephony technology. */
  trunks?: readonly string[];
  /** Regular expression (source) an extension's endpoint name matches, e.g. ^\d{2,5}$ */
  extensionPattern: string;
}

/** Technologies whose non-extension endpoints are taken for trunks when `trunks` is not configured. */
const TELEPHONY_TECHS = new Set(['PJSIP', 'SIP', 'IAX2', 'DAHDI', 'H323', 'OOH323', 'MOTIF', 'UNISTIM', 'SKINNY', 'MGCP', 'WEBSOCKET']);

export interface ParsedChannelName {
  tech: string;
  /** PJSIP/101-0000002a → 101; DAHDI/i1/... → i1; Local/102@from-internal-00000002;1 → 102@from-internal */
  endpoint: string;
  /** Local channels only: 1 or 2. */
  localHalf?: 1 | 2;
}

export function parseChannelName(name: string): ParsedChannelName {
  const slash = name.indexOf('/');
  if (slash < 0) return { tech: name.toUpperCase(), endpoint: '' };
  const tech = name.slice(0, slash).toUpperCase();
  let rest = name.slice(slash + 1);
  let localHalf: 1 | 2 | undefined;
  if (tech === 'LOCAL') {
    const semi = rest.lastIndexOf(';');
    if (semi >= 0) {
      localHalf = rest.slice(semi + 1) === '2' ? 2 : 1;
      rest = rest.slice(0, semi);
    }
  }
  // DAHDI/i1/74951234567-1: the span/group is what identifies the line.
  const inner = rest.indexOf('/');
  if (inner >= 0) rest = rest.slice(0, inner);
  const dash = rest.lastIndexOf('-');
  const endpoint = dash > 0 ? rest.slice(0, dash) : rest;
  return localHalf ? { tech, endpoint, localHalf } : { tech, endpoint };
}

/** The other half of a Local channel pair: Local/x@ctx-0001;1 ↔ Local/x@ctx-0001;2. */
export function localPartnerName(name: string): string | undefined {
  if (name.endsWith(';1')) return name.slice(0, -1) + '2';
  if (name.endsWith(';2')) return name.slice(0, -1) + '1';
  return undefined;
}

export class ChannelClassifier {
  readonly #extension: RegExp;
  readonly #trunks: ReadonlySet<string> | undefined;

  constructor(config: ClassifyConfig) {
    this.#extension = new RegExp(config.extensionPattern);
    this.#trunks = config.trunks && config.trunks.length > 0 ? new Set(config.trunks) : undefined;
  }

  classify(name: string): { kind: ChannelKind; endpoint: string } {
    const parsed = parseChannelName(name);
    if (parsed.tech === 'LOCAL') return { kind: 'local', endpoint: parsed.endpoint };
    if (this.#trunks?.has(parsed.endpoint)) return { kind: 'trunk', endpoint: parsed.endpoint };
    if (TELEPHONY_TECHS.has(parsed.tech) && this.#extension.test(parsed.endpoint)) {
      return { kind: 'extension', endpoint: parsed.endpoint };
    }
    if (!this.#trunks && TELEPHONY_TECHS.has(parsed.tech)) return { kind: 'trunk', endpoint: parsed.endpoint };
    return { kind: 'other', endpoint: parsed.endpoint };
  }

  isExtensionNumber(value: string): boolean {
    return this.#extension.test(value);
  }
}

/** Caller IDs that mean "withheld": registered for the count, never matched to a CRM entity. */
const WITHHELD = new Set(['', 'anonymous', 'unknown', '<unknown>', 'restricted', 'private', 'unavailable', 'withheld']);

export function isWithheld(number: string | undefined): boolean {
  return number === undefined || WITHHELD.has(number.trim().toLowerCase());
}

/** The number part of a Dial() string: `89161234567@provider` → 89161234567, `PJSIP/+7916…@trunk` → +7916…. */
export function numberFromDialString(dialString: string | undefined): string | undefined {
  if (!dialString) return undefined;
  let s = dialString;
  const slash = s.lastIndexOf('/');
  if (slash >= 0) s = s.slice(slash + 1);
  const at = s.indexOf('@');
  if (at >= 0) s = s.slice(0, at);
  return s || undefined;
}
