/**
 * process_originate_params: the AMI Originate of a click-to-call from Bitrix24.
 * `channel` rings the employee's phone first; when it is answered, Asterisk dials `extension` in `context`.
 *
 * - Mobile numbers go out through the cheaper GSM gateway (its own dialplan context).
 * - The trunk expects the Russian 8XXXXXXXXXX format, while the CRM keeps +7XXXXXXXXXX.
 * - The phone shows who is being called back.
 */
module.exports = function (input) {
  const p = Object.assign({}, input.params);
  const digits = p.extension.replace(/\D/g, '');
  if (digits.length === 11 && (digits[0] === '7' || digits[0] === '8')) p.extension = '8' + digits.slice(1);
  if (/^89/.test(p.extension)) p.context = 'outbound-gsm';
  p.caller_id = 'CRM <' + p.extension + '>';
  p.variable = { B24_CLICK_TO_CALL: '1' };
  return { data: p, state: 'success' };
};
