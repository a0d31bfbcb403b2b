/**
 * Bitrix24's batch takes every command as a `method?query` string that PHP's parse_str() decodes
 * (settings/how-to-call-rest-api/batch.md, data-encoding.md), so nested params must be spelled the PHP way:
 * `FIELDS[TITLE]=x`, arrays as `USER_ID[0]=1&USER_ID[1]=2` (what http_build_query produces).
 *
 * Values are percent-encoded; parse_str decodes them before Bitrix24 substitutes `$result[key][FIELD]`
 * references, so references survive encoding. The brackets of the PHP key syntax stay literal, as in the docs'
 * examples (a bracket inside a key name is encoded).
 * Booleans become 1/0 and null/undefined are left out, like http_build_query.
 */
export function toPhpQuery(params: object): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) appendPair(parts, encodeURIComponent(key), value);
  return parts.join('&');
}

function appendPair(parts: string[], key: string, value: unknown): void {
  if (value === undefined || value === null) return;
  if (Array.isArray(value)) {
    value.forEach((item, index) => appendPair(parts, `${key}[${index}]`, item));
    return;
  }
  if (value instanceof Date) {
    parts.push(`${key}=${encodeURIComponent(value.toISOString())}`);
    return;
  }
  if (typeof value === 'object') {
    for (const [sub, item] of Object.entries(value)) appendPair(parts, `${key}[${encodeURIComponent(sub)}]`, item);
    return;
  }
  const scalar = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
  parts.push(`${key}=${encodeURIComponent(scalar)}`);
}


export type PhpValue = string | PhpObject;
export interface PhpObject { [key: string]: PhpValue }

/**
 * The inverse, for what Bitrix24 posts to event handlers: `event=…&data[PHONE_NUMBER]=…&auth[application_token]=…`
 * (PHP's parse_str). Throws on malformed percent-encoding; keys that are not `name[sub]…` are skipped; depth and
 * pair count are capped, since the body comes from the network. `__proto__`-like keys cannot reach a prototype
 * (the objects have none).
 */
export function fromPhpQuery(qs: string, limits: { maxPairs?: number; maxDepth?: number } = {}): PhpObject {
  const root: PhpObject = Object.create(null) as PhpObject;
  const maxPairs = limits.maxPairs ?? 1000;
  const maxDepth = limits.maxDepth ?? 5;
  const pairs = qs.split('&');
  if (pairs.length > maxPairs) throw new Error(`more than ${maxPairs} fields`);
  const decode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
  for (const pair of pairs) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const key = decode(eq < 0 ? pair : pair.slice(0, eq));
    const value = decode(eq < 0 ? '' : pair.slice(eq + 1));
    const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
    if (!m) continue;
    const path = [m[1]!, ...[...(m[2] ?? '').matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1]!)];
    if (path.length > maxDepth) throw new Error(`field ${key.slice(0, 40)} is nested too deep`);
    let node = root;
    for (let i = 0; i < path.length; i++) {
      let seg = path[i]!;
      if (seg === '') seg = String(Object.keys(node).length);
      if (i === path.length - 1) {
        node[seg] = value;
      } else {
        const next = node[seg];
        node = typeof next === 'object' ? next : (node[seg] = Object.create(null) as PhpObject);
      }
    }
  }
  return root;
}
