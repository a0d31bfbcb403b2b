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

