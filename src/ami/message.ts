import { DaemonError } from '../errors.ts';

/** One AMI frame as received: an unsolicited or list event, or the response to an action. */
export interface AmiMessage {
  readonly kind: 'event' | 'response';
  /** The value of `Event:` (events) or `Response:` (responses: Success, Error, Follows, Goodbye). */
  readonly name: string;
  /** First value of every key, keys exactly as sent (PascalCase). */
  readonly fields: Readonly<Record<string, string>>;
  /** Every value of keys that appear more than once, plus always Output, Variable, ChanVariable when present. */
  readonly lists: Readonly<Record<string, readonly string[]>>;
  /** Date.now() when the frame was complete. */
  readonly receivedAt: number;
}

/** Values an action field may take: arrays become repeated keys (`Variable: A=1`, `Variable: B=2`). */
export type AmiFieldValue = string | number | readonly string[] | undefined;
export type AmiActionFields = Readonly<Record<string, AmiFieldValue>>;

/**
 * A field by name, case-insensitively (Asterisk is not consistent: `UniqueID` in Cdr, `Uniqueid` elsewhere).
 * The exact spelling is tried first, so the common case costs one property read.
 */
export function field(msg: AmiMessage, name: string): string | undefined {
  const exact = msg.fields[name];
  if (exact !== undefined) return exact;
  const lower = name.toLowerCase();
  for (const key in msg.fields) if (key.toLowerCase() === lower) return msg.fields[key];
  return undefined;
}

/** Every value of a field (repeated keys such as Output / Variable), case-insensitively; [] when absent. */
export function fieldList(msg: AmiMessage, name: string): readonly string[] {
  const exact = msg.lists[name];
  if (exact !== undefined) return exact;
  const lower = name.toLowerCase();
  for (const key in msg.lists) if (key.toLowerCase() === lower) return msg.lists[key] ?? [];
  const single = field(msg, name);
  return single === undefined ? [] : [single];
}

function hasLineBreak(text: string): boolean {
  return text.includes('\r') || text.includes('\n');
}

/**
 * The wire form of an action. Throws E_AMI_ACTION when a name, key or value carries CR or LF: such a value
 * would end the frame early and let the rest be read by Asterisk as a second, injected action.
 */
export function serializeAction(action: string, actionId: string, fields: AmiActionFields = {}): string {
  if (action === '' || hasLineBreak(action) || action.includes(':')) {
    throw new DaemonError('E_AMI_ACTION', `AMI action name ${JSON.stringify(action)} is not valid`);
  }
  let out = `Action: ${action}\r\nActionID: ${actionId}\r\n`;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (value === undefined) continue;
    if (key === '' || hasLineBreak(key) || key.includes(':')) {
      throw new DaemonError('E_AMI_ACTION', `${action}: field name ${JSON.stringify(key)} is not valid`);
    }
    const lower = key.toLowerCase();
    if (lower === 'action' || lower === 'actionid') {
      throw new DaemonError('E_AMI_ACTION', `${action}: field ${key} is set by the AMI client, not by the caller`);
    }
    const values = Array.isArray(value) ? value : [String(value)];
    for (const v of values as readonly string[]) {
      if (hasLineBreak(v)) {
        throw new DaemonError('E_AMI_ACTION', `${action}: field ${key} contains a line break (CR or LF)`);
      }
      out += `${key}: ${v}\r\n`;
    }
  }
  return out + '\r\n';
}
