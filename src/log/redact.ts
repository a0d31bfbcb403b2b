/**
 * Secrets (AMI secret, webhook token, OAuth tokens) must never reach a log line or an error message.
 * Two layers: known secret values registered at start-up are replaced wherever they appear, and
 * well-known shapes are masked even when nobody registered them (a webhook URL's secret path
 * segment, `auth=`/`access_token=`/`refresh_token=` query parameters, `Secret:` AMI headers).
 */
const registered = new Set<string>();

/** Adds values that must be masked in every later log line (ignored when shorter than 4 chars: too many false hits). */
export function registerSecret(...values: Array<string | undefined | null>): void {
  for (const value of values) if (value && value.length >= 4) registered.add(value);
}

const SHAPES: Array<[RegExp, string]> = [
  // https://portal/rest/<user>/<secret>/method → keep the user id, hide the secret
  [/(\/rest\/\d+\/)[^/\s"'?]+/g, '$1***'],
  [/((?:^|[?&\s"'])(?:auth|access_token|refresh_token|client_secret|application_token|code|AUTH_ID|REFRESH_ID)=)[^&\s"']+/gi, '$1***'],
  [/("(?:auth|access_token|refresh_token|client_secret|application_token|secret|AUTH_ID|REFRESH_ID|authorization)"\s*:\s*")[^"]*/gi, '$1***'],
  [/((?:^|\r?\n)\s*Secret:\s*)[^\r\n]*/gi, '$1***'],
];

export function redact(text: string): string {
  let out = text;
  for (const secret of registered) if (out.includes(secret)) out = out.split(secret).join('***');
  for (const [re, replacement] of SHAPES) out = out.replace(re, replacement);
  return out;
}
