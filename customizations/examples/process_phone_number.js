/**
 * process_phone_number: every number before the daemon uses it (caller IDs, dialled numbers, extensions).
 *
 * Russian numbers arrive in every shape: +79161234567 from one trunk, 89161234567 from another, 79161234567 or
 * 9161234567 from a third. Bitrix24 finds a client only if the number is written the way the CRM has it, so bring
 * them all to E.164 (+7XXXXXXXXXX). Extensions (3-4 digits) and foreign numbers pass unchanged.
 */
module.exports = function (input) {
  const raw = String(input.params.phone);
  const digits = raw.replace(/[^\d]/g, '');
  let phone = raw;
  if (digits.length === 11 && (digits[0] === '7' || digits[0] === '8')) phone = '+7' + digits.slice(1);
  else if (digits.length === 10 && digits[0] === '9') phone = '+7' + digits;
  return { data: { phone: phone }, state: 'success' };
};
