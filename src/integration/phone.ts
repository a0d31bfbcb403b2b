/**
 * Phone numbers as Bitrix24 should see them: E.164 when libphonenumber-js recognises the number for the
 * configured default country (89161234567 → +79161234567 for RU), otherwise exactly as the PBX presented it.
 * Extensions and service numbers stay as they are: they are not phone numbers to normalise.
 */
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';

export function normalizePhone(raw: string, defaultCountry: string): string {
  const trimmed = raw.trim();
  if (trimmed === '') return trimmed;
  // Russian trunks often present national numbers as 7XXXXXXXXXX without '+': try it as international first.
  const candidates = /^\d{11,15}$/.test(trimmed) && !trimmed.startsWith('8') ? ['+' + trimmed, trimmed] : [trimmed];
  for (const candidate of candidates) {
    const parsed = parsePhoneNumberFromString(candidate, defaultCountry as CountryCode);
    if (parsed?.isValid()) return parsed.number;
  }
  return trimmed;
}
